package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;

/** A failing parallel job reports its exception and leaves the pool as parallel as before. */
class CpuPoolFailureTest {

    @Test
    void failureInTheCallersOwnChunkDoesNotLeaveThePoolSingleThreaded() {
        CpuPool pool = new CpuPool(2);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> pool.parallelFor(2, (start, end, thread) -> {
            if (thread == 0) throw new IllegalStateException("chunk 0 failed");
        }));
        assertEquals("chunk 0 failed", e.getMessage());
        // The next job must run its second chunk on the worker thread again, not inline on the caller. (The caller
        // takes a chunk whose worker has not started it; its own chunk waits up to 2 s here so that the worker can.)
        Set<Integer> threads = ConcurrentHashMap.newKeySet();
        Set<String> names = ConcurrentHashMap.newKeySet();
        java.util.concurrent.CountDownLatch second = new java.util.concurrent.CountDownLatch(1);
        pool.parallelFor(2, (start, end, thread) -> {
            threads.add(thread);
            names.add(Thread.currentThread().getName());
            if (thread == 1) second.countDown();
            else {
                try {
                    second.await(2, java.util.concurrent.TimeUnit.SECONDS);
                } catch (InterruptedException interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        });
        assertEquals(Set.of(0, 1), threads);
        assertTrue(names.contains("sparse-serve-cpu-1"), "second chunk ran on " + names);
    }

    @Test
    void failureInAWorkersChunkIsRethrownToTheCaller() {
        CpuPool pool = new CpuPool(2);
        assertThrows(ArithmeticException.class, () -> pool.parallelFor(2, (start, end, thread) -> {
            if (thread == 1) throw new ArithmeticException("chunk 1 failed");
        }));
        int[] sum = new int[2];
        pool.parallelFor(2, (start, end, thread) -> sum[thread] = end - start);
        assertEquals(1, sum[0]);
        assertEquals(1, sum[1]);
    }
}
