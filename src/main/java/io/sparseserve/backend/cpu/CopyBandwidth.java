package io.sparseserve.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The machine's memory copy bandwidth with all pool threads, counted as bytes read plus bytes written (the
 * STREAM "copy" convention), over arrays far larger than the caches. The yardstick for decode, which streams
 * weights and should run near the memory's speed.
 */
public final class CopyBandwidth {
    private CopyBandwidth() {}

    /** Best of {@code repeats} parallel copies of {@code bytes} bytes, in bytes per second. */
    public static double measure(CpuPool pool, long bytes, int repeats) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = arena.allocate(bytes, 64);
            MemorySegment dst = arena.allocate(bytes, 64);
            src.fill((byte) 1);
            dst.fill((byte) 2);
            int chunks = pool.threads() * 16;
            long chunk = bytes / chunks;
            double best = 0;
            for (int r = 0; r < repeats; r++) {
                long t0 = System.nanoTime();
                pool.parallelFor(chunks, (c0, c1, th) -> MemorySegment.copy(src, c0 * chunk, dst, c0 * chunk, (c1 - c0) * chunk));
                long t1 = System.nanoTime();
                best = Math.max(best, 2.0 * chunk * chunks / ((t1 - t0) / 1e9));
            }
            return best;
        }
    }
}
