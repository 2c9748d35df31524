package io.sparseserve.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's memory bandwidth with all pool threads, over arrays far larger than the caches: the yardsticks
 * for decode, which streams weights and should run near the memory's speed.
 * <ul>
 *   <li>copy: bytes read plus bytes written (the STREAM "copy" convention), by the JDK's bulk copy;</li>
 *   <li>read: bytes read by a vectorized sum over several streams per thread — the most a kernel that only reads
 *       (as decode does) can hope for; on our machines it is about two thirds of the copy figure.</li>
 * </ul>
 */
public final class CopyBandwidth {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int STREAMS = 4;
    private static volatile long checksum;

    private CopyBandwidth() {}

    /** Best of {@code repeats} parallel copies of {@code bytes} bytes, in bytes per second (read + written). */
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

    /** Best of {@code repeats} parallel reads of {@code bytes} bytes, in bytes read per second. */
    public static double measureRead(CpuPool pool, long bytes, int repeats) {
        try (Arena arena = Arena.ofShared()) {
            // Many chunks, each summed by a short call: the JIT compiles the vector loop after the first pass.
            int chunks = pool.threads() * 64;
            long step = (long) I.vectorByteSize() * STREAMS;
            long chunk = bytes / chunks / step * step;
            MemorySegment src = arena.allocate(chunk * chunks, 64);
            src.fill((byte) 1);
            long[] sums = new long[chunks];
            double best = 0;
            for (int r = 0; r < repeats + 1; r++) {
                long t0 = System.nanoTime();
                pool.parallelFor(chunks, (c0, c1, th) -> {
                    for (int c = c0; c < c1; c++) sums[c] += sum(src, c * chunk, chunk);
                });
                long t1 = System.nanoTime();
                if (r > 0) best = Math.max(best, chunk * chunks / ((t1 - t0) / 1e9));
            }
            checksum = sums[0]; // a use of the sums, so the JIT cannot drop the reads
            return best;
        }
    }

    /** Sums ints over STREAMS interleaved sub-ranges, so the hardware prefetchers run several streams at once. */
    private static long sum(MemorySegment s, long from, long len) {
        long part = len / STREAMS / I.vectorByteSize() * I.vectorByteSize();
        IntVector acc = IntVector.zero(I);
        for (long o = 0; o < part; o += I.vectorByteSize()) {
            for (int i = 0; i < STREAMS; i++) {
                acc = acc.add(IntVector.fromMemorySegment(I, s, from + i * part + o, ByteOrder.LITTLE_ENDIAN));
            }
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }
}
