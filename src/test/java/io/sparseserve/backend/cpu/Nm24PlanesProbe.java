package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.NmMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Probe, not a product kernel (issue 11): 2:4 BF16 re-laid out as 64-column chunks of 16 value pairs (one int per
 * group of 4, the pair's first value in the low half) plus four 16-bit select planes (first value at column 1 / 2 of
 * its group, second at 2 / 3), 72 bytes per 64 columns (0.56x dense). x is split into four streams by column mod 4;
 * each chunk is one load, two widenings, four mask blends selecting x, two FMAs: no popcount, no variable offset, no
 * expand. Measured by {@link SparseKernelBench} (nm24-planes*).
 *
 * <p>Original note: BF16 re-laid out as 64-column chunks of 16 value pairs (one int per group) plus four 16-bit select planes. */
final class Nm24PlanesProbe {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    static final ValueLayout.OfLong L64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final int CHUNK_BYTES = 72;

    final MemorySegment data;
    final int rows, cols, chunks;

    Nm24PlanesProbe(NmMatrix w) {
        rows = w.rows();
        cols = w.cols();
        chunks = cols / 64;
        data = Arena.global().allocate((long) rows * chunks * CHUNK_BYTES, 64);
        MemorySegment vals = w.values(), mask = w.bitmask();
        ValueLayout.OfShort s16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        for (int r = 0; r < rows; r++) {
            long p = w.valueIndex(r);
            for (int c = 0; c < chunks; c++) {
                long base = ((long) r * chunks + c) * CHUNK_BYTES;
                long planes = 0;
                for (int g = 0; g < 16; g++) {
                    int col = c * 64 + g * 4;
                    long bits = (mask.get(ValueLayout.JAVA_BYTE, (long) r * w.maskRowBytes() + (col >>> 3)) >>> (col & 7)) & 0xf;
                    int i = Long.numberOfTrailingZeros(bits), j = 63 - Long.numberOfLeadingZeros(bits);
                    short a = vals.get(s16, 2 * p), b = vals.get(s16, 2 * p + 2);
                    p += 2;
                    data.set(s16, base + 4L * g, a);
                    data.set(s16, base + 4L * g + 2, b);
                    if (i == 1) planes |= 1L << g;
                    if (i == 2) planes |= 1L << (16 + g);
                    if (j == 2) planes |= 1L << (32 + g);
                    if (j == 3) planes |= 1L << (48 + g);
                }
                data.set(L64, base + 64, planes);
            }
        }
    }

    /** x split into four streams: x4[s * cols/4 + g] = x[4g + s]. */
    static void split4(float[] x, int cols, float[] x4) {
        int n = cols / 4;
        for (int g = 0; g < n; g++) for (int s = 0; s < 4; s++) x4[s * n + g] = x[4 * g + s];
    }

    void panel(float[] x4, float[] y, int r, int q) {
        int n = cols / 4;
        long rowBytes = (long) chunks * CHUNK_BYTES, o = r * rowBytes, s = q * rowBytes;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int c = 0; c < chunks; c++) {
            int g = c * 16;
            FloatVector x0 = FloatVector.fromArray(F, x4, g), x1 = FloatVector.fromArray(F, x4, n + g);
            FloatVector x2 = FloatVector.fromArray(F, x4, 2 * n + g), x3 = FloatVector.fromArray(F, x4, 3 * n + g);
            long off = o + (long) c * CHUNK_BYTES;
            IntVector v = IntVector.fromMemorySegment(I, data, off, ByteOrder.LITTLE_ENDIAN);
            long m = data.get(L64, off + 64);
            a0 = even(v).fma(x0.blend(x1, VectorMask.fromLong(F, m)).blend(x2, VectorMask.fromLong(F, m >>> 16)), a0);
            b0 = odd(v).fma(x1.blend(x2, VectorMask.fromLong(F, m >>> 32)).blend(x3, VectorMask.fromLong(F, m >>> 48)), b0);
            off += s;
            v = IntVector.fromMemorySegment(I, data, off, ByteOrder.LITTLE_ENDIAN);
            m = data.get(L64, off + 64);
            a1 = even(v).fma(x0.blend(x1, VectorMask.fromLong(F, m)).blend(x2, VectorMask.fromLong(F, m >>> 16)), a1);
            b1 = odd(v).fma(x1.blend(x2, VectorMask.fromLong(F, m >>> 32)).blend(x3, VectorMask.fromLong(F, m >>> 48)), b1);
            off += s;
            v = IntVector.fromMemorySegment(I, data, off, ByteOrder.LITTLE_ENDIAN);
            m = data.get(L64, off + 64);
            a2 = even(v).fma(x0.blend(x1, VectorMask.fromLong(F, m)).blend(x2, VectorMask.fromLong(F, m >>> 16)), a2);
            b2 = odd(v).fma(x1.blend(x2, VectorMask.fromLong(F, m >>> 32)).blend(x3, VectorMask.fromLong(F, m >>> 48)), b2);
            off += s;
            v = IntVector.fromMemorySegment(I, data, off, ByteOrder.LITTLE_ENDIAN);
            m = data.get(L64, off + 64);
            a3 = even(v).fma(x0.blend(x1, VectorMask.fromLong(F, m)).blend(x2, VectorMask.fromLong(F, m >>> 16)), a3);
            b3 = odd(v).fma(x1.blend(x2, VectorMask.fromLong(F, m >>> 32)).blend(x3, VectorMask.fromLong(F, m >>> 48)), b3);
        }
        FloatVector sums = Lanes.sum4(a0.add(b0), a1.add(b1), a2.add(b2), a3.add(b3));
        y[r] = sums.lane(0);
        y[r + q] = sums.lane(1);
        y[r + 2 * q] = sums.lane(2);
        y[r + 3 * q] = sums.lane(3);
    }

    /** One row at a time: the same arithmetic as {@link #panel} for row r. */
    float row(float[] x4, int r) {
        int n = cols / 4;
        long o = (long) r * chunks * CHUNK_BYTES;
        FloatVector a = FloatVector.zero(F), b = a;
        for (int c = 0; c < chunks; c++) {
            int g = c * 16;
            FloatVector x0 = FloatVector.fromArray(F, x4, g), x1 = FloatVector.fromArray(F, x4, n + g);
            FloatVector x2 = FloatVector.fromArray(F, x4, 2 * n + g), x3 = FloatVector.fromArray(F, x4, 3 * n + g);
            long off = o + (long) c * CHUNK_BYTES;
            IntVector v = IntVector.fromMemorySegment(I, data, off, ByteOrder.LITTLE_ENDIAN);
            long m = data.get(L64, off + 64);
            a = even(v).fma(x0.blend(x1, VectorMask.fromLong(F, m)).blend(x2, VectorMask.fromLong(F, m >>> 16)), a);
            b = odd(v).fma(x1.blend(x2, VectorMask.fromLong(F, m >>> 32)).blend(x3, VectorMask.fromLong(F, m >>> 48)), b);
        }
        return Lanes.sum(a.add(b));
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats();
    }
}
