package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class CpuPoolTest {

    @Test
    void everyItemRunsOnceAndChunksRespectTheGranule() {
        CpuPool pool = new CpuPool(3);
        for (int n : new int[] {1, 2, 3, 7, 64, 1001}) {
            AtomicIntegerArray hits = new AtomicIntegerArray(n);
            pool.parallelFor(n, 4, (s, e, t) -> {
                assertTrue(s % 4 == 0, "chunk start " + s + " not a multiple of the granule");
                for (int i = s; i < e; i++) hits.incrementAndGet(i);
            });
            for (int i = 0; i < n; i++) assertEquals(1, hits.get(i), "item " + i + " of " + n);
        }
    }

    @Test
    void repeatedCallsRunOnSeveralThreads() {
        // The caller runs a chunk itself when its worker has not started it yet; here the caller's chunk waits (up
        // to 2 s) for the other chunk to start, so a worker that is alive always takes its own.
        CpuPool pool = new CpuPool(2);
        for (int call = 0; call < 50; call++) {
            Set<String> threads = ConcurrentHashMap.newKeySet();
            java.util.concurrent.CountDownLatch other = new java.util.concurrent.CountDownLatch(1);
            pool.parallelFor(2, (s, e, t) -> {
                threads.add(Thread.currentThread().getName());
                if (t == 1) other.countDown();
                else await(other);
            });
            assertEquals(2, threads.size(), "call " + call + " ran on " + threads);
        }
    }

    @Test
    void claimedRangesCoverEveryItemOnceWithOneThreadIndexAtATime() {
        CpuPool pool = new CpuPool(3);
        for (int n : new int[] {1, 5, 8, 9, 64, 1001}) {
            for (int chunk : new int[] {1, 4, 8, 2000}) {
                AtomicIntegerArray hits = new AtomicIntegerArray(n);
                AtomicIntegerArray busy = new AtomicIntegerArray(3);
                pool.parallelForClaimed(n, chunk, (s, e, t) -> {
                    // A thread index names per-thread scratch: never two ranges of one index at once.
                    assertEquals(1, busy.incrementAndGet(t), "thread index " + t + " in use twice");
                    assertTrue(s % chunk == 0 && e <= n && e - s <= Math.max(chunk, n), "range [" + s + ", " + e + ")");
                    for (int i = s; i < e; i++) hits.incrementAndGet(i);
                    busy.decrementAndGet(t);
                });
                for (int i = 0; i < n; i++) assertEquals(1, hits.get(i), "item " + i + " of " + n + ", chunk " + chunk);
            }
        }
        assertThrows(IllegalStateException.class, () -> pool.parallelForClaimed(100, 10, (s, e, t) -> {
            if (s == 50) throw new IllegalStateException("boom");
        }));
        AtomicIntegerArray after = new AtomicIntegerArray(100);
        pool.parallelForClaimed(100, 10, (s, e, t) -> {
            for (int i = s; i < e; i++) after.incrementAndGet(i);
        });
        for (int i = 0; i < 100; i++) assertEquals(1, after.get(i), "item " + i + " after a failure");
    }

    @Test
    void nestedCallsRunInlineAndFailuresPropagate() {
        CpuPool pool = new CpuPool(2);
        AtomicIntegerArray hits = new AtomicIntegerArray(8);
        pool.parallelFor(2, (s, e, t) -> pool.parallelFor(4, (s2, e2, t2) -> {
            for (int i = s2; i < e2; i++) hits.incrementAndGet(s * 4 + i);
        }));
        for (int i = 0; i < 8; i++) assertEquals(1, hits.get(i));
        assertThrows(IllegalStateException.class, () -> pool.parallelFor(2, (s, e, t) -> {
            if (t == 1) throw new IllegalStateException("boom");
        }));
        pool.parallelFor(2, (s, e, t) -> {}); // still usable
    }

    private static void await(java.util.concurrent.CountDownLatch latch) {
        try {
            latch.await(2, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    @Test
    void theCallerRunsChunksNoWorkerHasStartedAndEveryChunkRunsOnce() {
        // Workers parked (long idle) or slow to be scheduled: the caller takes their chunks. Whoever runs a chunk,
        // each runs exactly once, with its own chunk index.
        CpuPool pool = new CpuPool(3);
        for (int call = 0; call < 2_000; call++) {
            AtomicIntegerArray runs = new AtomicIntegerArray(30);
            pool.parallelFor(30, 10, (s, e, t) -> {
                assertEquals(t * 10, s, "chunk " + t + " starts at its own range");
                for (int i = s; i < e; i++) runs.incrementAndGet(i);
            });
            for (int i = 0; i < 30; i++) assertEquals(1, runs.get(i), "call " + call + " item " + i);
        }
    }
}
