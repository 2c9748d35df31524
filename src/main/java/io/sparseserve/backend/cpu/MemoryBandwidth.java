package io.sparseserve.backend.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.List;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The machine's memory bandwidth with all pool threads, the yardsticks for decode, which streams weights and
 * should run near the memory's speed: {@link #copy} (bytes read plus bytes written over arrays far larger than the
 * caches, the STREAM "copy" convention), {@link #read} (the same segments decode reads, one after another in the
 * access pattern of the decode kernel with no arithmetic: what decode could reach at best with a barrier after each)
 * and {@link #readOnePass} (the same, without the barriers: a bound for any decode).
 */
public final class MemoryBandwidth {
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int STREAMS = 4;
    private static volatile long sink;

    private MemoryBandwidth() {}

    /** Best of {@code repeats} parallel copies of {@code bytes} bytes, in bytes per second. */
    public static double copy(CpuPool pool, long bytes, int repeats) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment src = arena.allocate(bytes, 64);
            MemorySegment dst = arena.allocate(bytes, 64);
            src.fill((byte) 1);
            dst.fill((byte) 2);
            int chunks = pool.threads() * 16;
            long chunk = bytes / chunks;
            return best(repeats, 2.0 * chunk * chunks, () ->
                    pool.parallelFor(chunks, (c0, c1, th) -> MemorySegment.copy(src, c0 * chunk, dst, c0 * chunk, (c1 - c0) * chunk)));
        }
    }

    /**
     * Best of {@code repeats} reads of every segment, one after another, each split between the threads and read as
     * {@value #STREAMS} sequential streams per thread (as the decode kernel reads a matrix), in bytes per second.
     */
    public static double read(CpuPool pool, List<MemorySegment> segments, int repeats) {
        int threads = pool.threads();
        return best(repeats, totalBytes(segments), () -> {
            for (MemorySegment s : segments) {
                long perThread = s.byteSize() / threads;
                pool.parallelFor(threads, (t, t1, th) -> sink += streams(s, t * perThread, perThread));
            }
        });
    }

    /**
     * Best of {@code repeats} reads of every segment in one parallel pass: each thread reads its share of every
     * segment, one segment after another, with no synchronisation in between. The most that any decode reading each
     * weight once from memory could reach on this machine.
     */
    public static double readOnePass(CpuPool pool, List<MemorySegment> segments, int repeats) {
        int threads = pool.threads();
        return best(repeats, totalBytes(segments), () -> pool.parallelFor(threads, (t, t1, th) -> {
            long sum = 0;
            for (MemorySegment s : segments) {
                long perThread = s.byteSize() / threads;
                sum += streams(s, t * perThread, perThread);
            }
            sink += sum;
        }));
    }

    /** The highest rate of {@code repeats} timed runs of {@code pass}, which moves {@code bytes} bytes each. */
    private static double best(int repeats, double bytes, Runnable pass) {
        double best = 0;
        for (int r = 0; r < repeats; r++) {
            long t0 = System.nanoTime();
            pass.run();
            best = Math.max(best, bytes / ((System.nanoTime() - t0) / 1e9));
        }
        return best;
    }

    private static long totalBytes(List<MemorySegment> segments) {
        long total = 0;
        for (MemorySegment s : segments) total += s.byteSize();
        return total;
    }

    /** Sums [from, from + len) as four interleaved sequential streams, a vector at a time from each. */
    private static long streams(MemorySegment s, long from, long len) {
        long step = I.vectorByteSize(), part = len / STREAMS / step * step;
        IntVector a = IntVector.zero(I), b = a, c = a, d = a;
        for (long o = from; o < from + part; o += step) {
            a = a.add(IntVector.fromMemorySegment(I, s, o, ByteOrder.LITTLE_ENDIAN));
            b = b.add(IntVector.fromMemorySegment(I, s, o + part, ByteOrder.LITTLE_ENDIAN));
            c = c.add(IntVector.fromMemorySegment(I, s, o + 2 * part, ByteOrder.LITTLE_ENDIAN));
            d = d.add(IntVector.fromMemorySegment(I, s, o + 3 * part, ByteOrder.LITTLE_ENDIAN));
        }
        return a.add(b).add(c).add(d).reduceLanes(VectorOperators.ADD);
    }
}
