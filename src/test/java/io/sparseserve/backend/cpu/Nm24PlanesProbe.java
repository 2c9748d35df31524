package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.NmMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Probe, not a product kernel (issue 11): 2:4 BF16 times one vector in the file's own layout, with no popcount, no
 * variable offset and no expand. Per 64 columns (16 groups of 4): the 32 kept values are 16 ints (a group's pair, the
 * first value in the low half); the mask's 64 bits give four 16-bit select masks by {@code Long.compress} (bit 0, 1, 2,
 * 3 of every nibble). With x split by column mod 4 into x0..x3, the first value's input is x2, blended with x1 where
 * bit 1 is set, then with x0 where bit 0 is set; the second's is x1, blended with x2 (bit 2), then x3 (bit 3): exactly
 * two bits are set per group. Two FMAs per 64 columns. Measured by {@link SparseKernelBench} (nm24-planes*): one row
 * at a time fast, four rows interleaved several times slower on a Zen 5 (see the README's sparse section).
 * AVX-512 (16 float lanes) only, columns a multiple of 64, no tail.
 */
final class Nm24PlanesProbe {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    private static final ValueLayout.OfLong L64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final long B0 = 0x1111111111111111L, B1 = B0 << 1, B2 = B0 << 2, B3 = B0 << 3;

    private final MemorySegment values, mask;
    private final float[] buf = new float[4 * Lanes.N];
    private final int cols, chunks;

    Nm24PlanesProbe(NmMatrix w) {
        if (w.n() != 2 || w.m() != 4 || w.cols() % 64 != 0) throw new IllegalArgumentException("2:4 with 64k columns only");
        values = w.values();
        mask = w.bitmask();
        cols = w.cols();
        chunks = cols / 64;
    }

    /** x split into four streams: x4[s * cols/4 + g] = x[4g + s]. */
    static void split4(float[] x, int cols, float[] x4) {
        int n = cols / 4;
        for (int g = 0; g < n; g++) for (int s = 0; s < 4; s++) x4[s * n + g] = x[4 * g + s];
    }

    /** Row r's product with x (split by {@link #split4}). A row's values take cols bytes, its mask cols / 8. */
    float row(float[] x4, int r) {
        int n = cols / 4;
        long vo = (long) r * cols, mo = (long) r * cols / 8;
        FloatVector a = FloatVector.zero(F), b = a;
        for (int c = 0; c < chunks; c++) {
            int g = c * 16;
            long m = mask.get(L64, mo + 8L * c);
            IntVector v = IntVector.fromMemorySegment(I, values, vo + 64L * c, ByteOrder.LITTLE_ENDIAN);
            FloatVector x0 = FloatVector.fromArray(F, x4, g), x1 = FloatVector.fromArray(F, x4, n + g);
            FloatVector x2 = FloatVector.fromArray(F, x4, 2 * n + g), x3 = FloatVector.fromArray(F, x4, 3 * n + g);
            a = even(v).fma(x2.blend(x1, mask(m, B1)).blend(x0, mask(m, B0)), a);
            b = odd(v).fma(x1.blend(x2, mask(m, B2)).blend(x3, mask(m, B3)), b);
        }
        return Lanes.sum(a.add(b));
    }

    /**
     * Rows r, r + q, r + 2q, r + 3q interleaved: the arithmetic of {@link #row} for each. Every vector operation is
     * written out here: a helper returning a vector or a mask, or a reduction taking vectors, is not inlined once C2
     * has spent this method's node budget, and its values are boxed (4.8 ns per 16 columns with them).
     */
    void panel(float[] x4, float[] y, int r, int q) {
        int n = cols / 4;
        long[] vo = new long[4], mo = new long[4];
        for (int i = 0; i < 4; i++) {
            vo[i] = (long) (r + i * q) * cols;
            mo[i] = vo[i] / 8;
        }
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int c = 0; c < chunks; c++) {
            int g = c * 16;
            FloatVector x0 = FloatVector.fromArray(F, x4, g), x1 = FloatVector.fromArray(F, x4, n + g);
            FloatVector x2 = FloatVector.fromArray(F, x4, 2 * n + g), x3 = FloatVector.fromArray(F, x4, 3 * n + g);
            long m = mask.get(L64, mo[0] + 8L * c);
            IntVector v = IntVector.fromMemorySegment(I, values, vo[0] + 64L * c, ByteOrder.LITTLE_ENDIAN);
            a0 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x2.blend(x1, VectorMask.fromLong(F, Long.compress(m, B1))).blend(x0, VectorMask.fromLong(F, Long.compress(m, B0))), a0);
            b0 = v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats().fma(x1.blend(x2, VectorMask.fromLong(F, Long.compress(m, B2))).blend(x3, VectorMask.fromLong(F, Long.compress(m, B3))), b0);
            m = mask.get(L64, mo[1] + 8L * c);
            v = IntVector.fromMemorySegment(I, values, vo[1] + 64L * c, ByteOrder.LITTLE_ENDIAN);
            a1 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x2.blend(x1, VectorMask.fromLong(F, Long.compress(m, B1))).blend(x0, VectorMask.fromLong(F, Long.compress(m, B0))), a1);
            b1 = v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats().fma(x1.blend(x2, VectorMask.fromLong(F, Long.compress(m, B2))).blend(x3, VectorMask.fromLong(F, Long.compress(m, B3))), b1);
            m = mask.get(L64, mo[2] + 8L * c);
            v = IntVector.fromMemorySegment(I, values, vo[2] + 64L * c, ByteOrder.LITTLE_ENDIAN);
            a2 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x2.blend(x1, VectorMask.fromLong(F, Long.compress(m, B1))).blend(x0, VectorMask.fromLong(F, Long.compress(m, B0))), a2);
            b2 = v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats().fma(x1.blend(x2, VectorMask.fromLong(F, Long.compress(m, B2))).blend(x3, VectorMask.fromLong(F, Long.compress(m, B3))), b2);
            m = mask.get(L64, mo[3] + 8L * c);
            v = IntVector.fromMemorySegment(I, values, vo[3] + 64L * c, ByteOrder.LITTLE_ENDIAN);
            a3 = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().fma(x2.blend(x1, VectorMask.fromLong(F, Long.compress(m, B1))).blend(x0, VectorMask.fromLong(F, Long.compress(m, B0))), a3);
            b3 = v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats().fma(x1.blend(x2, VectorMask.fromLong(F, Long.compress(m, B2))).blend(x3, VectorMask.fromLong(F, Long.compress(m, B3))), b3);
        }
        int n16 = Lanes.N;
        a0.add(b0).intoArray(buf, 0);
        a1.add(b1).intoArray(buf, n16);
        a2.add(b2).intoArray(buf, 2 * n16);
        a3.add(b3).intoArray(buf, 3 * n16);
        Lanes.sums(buf, 4);
        y[r] = buf[0];
        y[r + q] = buf[1];
        y[r + 2 * q] = buf[2];
        y[r + 3 * q] = buf[3];
    }

    /**
     * Row r times four tokens (token t split by {@link #split4} at x4[t * cols]): the arithmetic of {@link #row} per
     * token, the row's values and masks loaded once per chunk, every vector operation written out (see {@link #panel}).
     */
    void tile4(float[] x4, int r, float[] y, int rows) {
        int n = cols / 4;
        long vo = (long) r * cols, mo = vo / 8;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int c = 0; c < chunks; c++) {
            int g = c * 16;
            long m = mask.get(L64, mo + 8L * c);
            IntVector v = IntVector.fromMemorySegment(I, values, vo + 64L * c, ByteOrder.LITTLE_ENDIAN);
            FloatVector e = v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
            FloatVector o = v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats();
            VectorMask<Float> k0 = VectorMask.fromLong(F, Long.compress(m, B0)), k1 = VectorMask.fromLong(F, Long.compress(m, B1));
            VectorMask<Float> k2 = VectorMask.fromLong(F, Long.compress(m, B2)), k3 = VectorMask.fromLong(F, Long.compress(m, B3));
            int t0 = g, t1 = cols + g, t2 = 2 * cols + g, t3 = 3 * cols + g;
            a0 = e.fma(FloatVector.fromArray(F, x4, t0 + 2 * n).blend(FloatVector.fromArray(F, x4, t0 + n), k1).blend(FloatVector.fromArray(F, x4, t0), k0), a0);
            b0 = o.fma(FloatVector.fromArray(F, x4, t0 + n).blend(FloatVector.fromArray(F, x4, t0 + 2 * n), k2).blend(FloatVector.fromArray(F, x4, t0 + 3 * n), k3), b0);
            a1 = e.fma(FloatVector.fromArray(F, x4, t1 + 2 * n).blend(FloatVector.fromArray(F, x4, t1 + n), k1).blend(FloatVector.fromArray(F, x4, t1), k0), a1);
            b1 = o.fma(FloatVector.fromArray(F, x4, t1 + n).blend(FloatVector.fromArray(F, x4, t1 + 2 * n), k2).blend(FloatVector.fromArray(F, x4, t1 + 3 * n), k3), b1);
            a2 = e.fma(FloatVector.fromArray(F, x4, t2 + 2 * n).blend(FloatVector.fromArray(F, x4, t2 + n), k1).blend(FloatVector.fromArray(F, x4, t2), k0), a2);
            b2 = o.fma(FloatVector.fromArray(F, x4, t2 + n).blend(FloatVector.fromArray(F, x4, t2 + 2 * n), k2).blend(FloatVector.fromArray(F, x4, t2 + 3 * n), k3), b2);
            a3 = e.fma(FloatVector.fromArray(F, x4, t3 + 2 * n).blend(FloatVector.fromArray(F, x4, t3 + n), k1).blend(FloatVector.fromArray(F, x4, t3), k0), a3);
            b3 = o.fma(FloatVector.fromArray(F, x4, t3 + n).blend(FloatVector.fromArray(F, x4, t3 + 2 * n), k2).blend(FloatVector.fromArray(F, x4, t3 + 3 * n), k3), b3);
        }
        int n16 = Lanes.N;
        a0.add(b0).intoArray(buf, 0);
        a1.add(b1).intoArray(buf, n16);
        a2.add(b2).intoArray(buf, 2 * n16);
        a3.add(b3).intoArray(buf, 3 * n16);
        Lanes.sums(buf, 4);
        for (int t = 0; t < 4; t++) y[t * rows + r] = buf[t];
    }

    private static VectorMask<Float> mask(long m, long bits) {
        return VectorMask.fromLong(F, Long.compress(m, bits));
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.lanewise(VectorOperators.AND, 0xffff0000).reinterpretAsFloats();
    }
}
