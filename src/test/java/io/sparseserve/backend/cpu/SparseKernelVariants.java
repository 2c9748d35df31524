package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.MaskedMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/** Candidate sparse decode kernels measured by {@link SparseKernelBench} (no tails, no bias: timing only). */
final class SparseKernelVariants {
    private SparseKernelVariants() {}

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    private static final VectorSpecies<Short> S32 = ShortVector.SPECIES_512;
    private static final VectorSpecies<Short> S16 = VectorSpecies.of(short.class, VectorShape.S_256_BIT);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** 16 columns per step: x compressed under the mask against the next 16 packed values. */
    static void compressX(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        if (w.valueIndex(r3 + 1) + 16 > vals.byteSize() / 2) return;
        int cols = w.cols(), rb = w.maskRowBytes(), bound = cols & ~15;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 16) {
            FloatVector xv = FloatVector.fromArray(F, x, c);
            long b0 = mask.get(I16, m0 + (c >>> 3)) & 0xffffL, b1 = mask.get(I16, m1 + (c >>> 3)) & 0xffffL;
            long b2 = mask.get(I16, m2 + (c >>> 3)) & 0xffffL, b3 = mask.get(I16, m3 + (c >>> 3)) & 0xffffL;
            a0 = widen(vals, p0).fma(xv.compress(VectorMask.fromLong(F, b0)), a0);
            a1 = widen(vals, p1).fma(xv.compress(VectorMask.fromLong(F, b1)), a1);
            a2 = widen(vals, p2).fma(xv.compress(VectorMask.fromLong(F, b2)), a2);
            a3 = widen(vals, p3).fma(xv.compress(VectorMask.fromLong(F, b3)), a3);
            p0 += Long.bitCount(b0);
            p1 += Long.bitCount(b1);
            p2 += Long.bitCount(b2);
            p3 += Long.bitCount(b3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    /** Timing probe: {@link #compressX} without the compress (wrong results): what the rest of the step costs. */
    static void noSpread(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        if (w.valueIndex(r3 + 1) + 16 > vals.byteSize() / 2) return;
        int cols = w.cols(), rb = w.maskRowBytes(), bound = cols & ~15;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 16) {
            FloatVector xv = FloatVector.fromArray(F, x, c);
            long b0 = mask.get(I16, m0 + (c >>> 3)) & 0xffffL, b1 = mask.get(I16, m1 + (c >>> 3)) & 0xffffL;
            long b2 = mask.get(I16, m2 + (c >>> 3)) & 0xffffL, b3 = mask.get(I16, m3 + (c >>> 3)) & 0xffffL;
            a0 = widen(vals, p0).fma(xv, a0);
            a1 = widen(vals, p1).fma(xv, a1);
            a2 = widen(vals, p2).fma(xv, a2);
            a3 = widen(vals, p3).fma(xv, a3);
            p0 += Long.bitCount(b0);
            p1 += Long.bitCount(b1);
            p2 += Long.bitCount(b2);
            p3 += Long.bitCount(b3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    /** Expand of the widened values as today, but 32 columns per mask load and the low 16 bits' count computed once. */
    static void expandStep32(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        if (w.valueIndex(r3 + 1) + 32 > vals.byteSize() / 2) return;
        int cols = w.cols(), rb = w.maskRowBytes(), bound = cols & ~31;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 32) {
            FloatVector xv = FloatVector.fromArray(F, x, c), xw = FloatVector.fromArray(F, x, c + 16);
            int b0 = mask.get(I32, m0 + (c >>> 3)), b1 = mask.get(I32, m1 + (c >>> 3));
            int b2 = mask.get(I32, m2 + (c >>> 3)), b3 = mask.get(I32, m3 + (c >>> 3));
            long h0 = p0 + Integer.bitCount(b0 & 0xffff), h1 = p1 + Integer.bitCount(b1 & 0xffff);
            long h2 = p2 + Integer.bitCount(b2 & 0xffff), h3 = p3 + Integer.bitCount(b3 & 0xffff);
            a0 = widen(vals, p0).expand(VectorMask.fromLong(F, b0 & 0xffff)).fma(xv, a0);
            a1 = widen(vals, p1).expand(VectorMask.fromLong(F, b1 & 0xffff)).fma(xv, a1);
            a2 = widen(vals, p2).expand(VectorMask.fromLong(F, b2 & 0xffff)).fma(xv, a2);
            a3 = widen(vals, p3).expand(VectorMask.fromLong(F, b3 & 0xffff)).fma(xv, a3);
            a0 = widen(vals, h0).expand(VectorMask.fromLong(F, b0 >>> 16)).fma(xw, a0);
            a1 = widen(vals, h1).expand(VectorMask.fromLong(F, b1 >>> 16)).fma(xw, a1);
            a2 = widen(vals, h2).expand(VectorMask.fromLong(F, b2 >>> 16)).fma(xw, a2);
            a3 = widen(vals, h3).expand(VectorMask.fromLong(F, b3 >>> 16)).fma(xw, a3);
            p0 += Integer.bitCount(b0);
            p1 += Integer.bitCount(b1);
            p2 += Integer.bitCount(b2);
            p3 += Integer.bitCount(b3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    /** Timing probe: widen and FMA only, the values read densely (no mask at all): the floor of any such kernel. */
    static void widenOnly(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        int cols = w.cols() / 2, bound = cols & ~15;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        if (p3 + cols + 16 > vals.byteSize() / 2) return;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 16) {
            FloatVector xv = FloatVector.fromArray(F, x, c);
            a0 = widen(vals, p0 + c).fma(xv, a0);
            a1 = widen(vals, p1 + c).fma(xv, a1);
            a2 = widen(vals, p2 + c).fma(xv, a2);
            a3 = widen(vals, p3 + c).fma(xv, a3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    /** 16 columns per step: one vpexpandw puts kept value k in the high half of its column's 32-bit lane (widen + spread). */
    static void fused16(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        if (w.valueIndex(r3 + 1) + 32 > vals.byteSize() / 2) return;
        int cols = w.cols(), rb = w.maskRowBytes(), bound = cols & ~15;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 16) {
            FloatVector xv = FloatVector.fromArray(F, x, c);
            long b0 = mask.get(I16, m0 + (c >>> 3)) & 0xffffL, b1 = mask.get(I16, m1 + (c >>> 3)) & 0xffffL;
            long b2 = mask.get(I16, m2 + (c >>> 3)) & 0xffffL, b3 = mask.get(I16, m3 + (c >>> 3)) & 0xffffL;
            a0 = high(vals, p0, b0).fma(xv, a0);
            a1 = high(vals, p1, b1).fma(xv, a1);
            a2 = high(vals, p2, b2).fma(xv, a2);
            a3 = high(vals, p3, b3).fma(xv, a3);
            p0 += Long.bitCount(b0);
            p1 += Long.bitCount(b1);
            p2 += Long.bitCount(b2);
            p3 += Long.bitCount(b3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    private static FloatVector high(MemorySegment vals, long p, long bits) {
        return ShortVector.fromMemorySegment(S32, vals, 2 * p, ByteOrder.LITTLE_ENDIAN)
                .expand(VectorMask.fromLong(S32, Long.expand(bits, 0xAAAAAAAAL))).reinterpretAsFloats();
    }

    /** The previous kernel's step: 16 values widened to floats, then spread by a float expand (vexpandps). */
    static void expandFloats(MaskedMatrix w, float[] x, float[] y, int r, int q) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        if (w.valueIndex(r3 + 1) + 16 > vals.byteSize() / 2) return;
        int cols = w.cols(), rb = w.maskRowBytes(), bound = cols & ~15;
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = 0; c < bound; c += 16) {
            FloatVector xv = FloatVector.fromArray(F, x, c);
            long b0 = mask.get(I16, m0 + (c >>> 3)) & 0xffffL, b1 = mask.get(I16, m1 + (c >>> 3)) & 0xffffL;
            long b2 = mask.get(I16, m2 + (c >>> 3)) & 0xffffL, b3 = mask.get(I16, m3 + (c >>> 3)) & 0xffffL;
            a0 = widen(vals, p0).expand(VectorMask.fromLong(F, b0)).fma(xv, a0);
            a1 = widen(vals, p1).expand(VectorMask.fromLong(F, b1)).fma(xv, a1);
            a2 = widen(vals, p2).expand(VectorMask.fromLong(F, b2)).fma(xv, a2);
            a3 = widen(vals, p3).expand(VectorMask.fromLong(F, b3)).fma(xv, a3);
            p0 += Long.bitCount(b0);
            p1 += Long.bitCount(b1);
            p2 += Long.bitCount(b2);
            p3 += Long.bitCount(b3);
        }
        y[r] = a0.reduceLanes(VectorOperators.ADD);
        y[r1] = a1.reduceLanes(VectorOperators.ADD);
        y[r2] = a2.reduceLanes(VectorOperators.ADD);
        y[r3] = a3.reduceLanes(VectorOperators.ADD);
    }

    private static FloatVector widen(MemorySegment vals, long p) {
        ShortVector s = ShortVector.fromMemorySegment(S16, vals, 2 * p, ByteOrder.LITTLE_ENDIAN);
        return ((IntVector) s.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }
}
