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
        CpuPool pool = new CpuPool(2);
        for (int call = 0; call < 50; call++) {
            Set<String> threads = ConcurrentHashMap.newKeySet();
            pool.parallelFor(2, (s, e, t) -> threads.add(Thread.currentThread().getName()));
            assertEquals(2, threads.size(), "call " + call + " ran on " + threads);
        }
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
}
