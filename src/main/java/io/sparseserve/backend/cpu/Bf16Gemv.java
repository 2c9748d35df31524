package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Matrix times one vector for dense BF16 weights, the decode hot path, fused so that each weight is loaded once
 * and never stored: a 32-bit lane holds two BF16 values, the even element in its low half. Shifting the lane left
 * by 16 gives the even element as a float, masking off the low half gives the odd one; the input vector is split
 * once per call into its even and odd elements to match. Decode then streams weights at memory speed instead of
 * being limited by the widen-store-reload of the general panel path.
 */
final class Bf16Gemv {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final int ROWS = 4;
    private static final ValueLayout.OfInt PAIR = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Bf16Gemv() {}

    static boolean applies(Object w, int tokens) {
        return tokens == 1 && w instanceof DenseMatrix d && d.dtype() == DType.BF16 && d.cols() % 2 == 0;
    }

    /** Splits x[xOff, xOff + cols) into even elements (xe) and odd elements (xo). */
    static void split(float[] x, int xOff, int cols, float[] xe, float[] xo) {
        for (int i = 0, n = cols / 2; i < n; i++) {
            xe[i] = x[xOff + 2 * i];
            xo[i] = x[xOff + 2 * i + 1];
        }
    }

    /** y[yOff + r] = W[r, :] . x + bias[r] for rows [r0, r1). */
    static void rows(DenseMatrix w, float[] xe, float[] xo, float[] y, int yOff, float[] bias, int r0, int r1) {
        MemorySegment seg = w.data();
        int cols = w.cols();
        int r = r0;
        for (; r + ROWS <= r1; r += ROWS) panel(seg, cols, xe, xo, y, yOff + r, r);
        for (; r < r1; r++) y[yOff + r] = row(seg, cols, xe, xo, r);
        if (bias != null) {
            for (int i = r0; i < r1; i++) y[yOff + i] += bias[i];
        }
    }

    /** Four rows at once, sharing the loads of x. Kept small so the JIT inlines every vector operation. */
    private static void panel(MemorySegment seg, int cols, float[] xe, float[] xo, float[] y, int yo, int r) {
        int half = cols / 2, bound = I.loopBound(half);
        long rowBytes = 2L * cols, o = r * rowBytes;
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, d0 = e0, d1 = e0, d2 = e0, d3 = e0;
        for (int k = 0; k < bound; k += I.length()) {
            FloatVector ve = FloatVector.fromArray(F, xe, k), vo = FloatVector.fromArray(F, xo, k);
            long off = o + 4L * k;
            IntVector v = IntVector.fromMemorySegment(I, seg, off, ByteOrder.LITTLE_ENDIAN);
            e0 = even(v).fma(ve, e0);
            d0 = odd(v).fma(vo, d0);
            v = IntVector.fromMemorySegment(I, seg, off + rowBytes, ByteOrder.LITTLE_ENDIAN);
            e1 = even(v).fma(ve, e1);
            d1 = odd(v).fma(vo, d1);
            v = IntVector.fromMemorySegment(I, seg, off + 2 * rowBytes, ByteOrder.LITTLE_ENDIAN);
            e2 = even(v).fma(ve, e2);
            d2 = odd(v).fma(vo, d2);
            v = IntVector.fromMemorySegment(I, seg, off + 3 * rowBytes, ByteOrder.LITTLE_ENDIAN);
            e3 = even(v).fma(ve, e3);
            d3 = odd(v).fma(vo, d3);
        }
        y[yo] = e0.add(d0).reduceLanes(VectorOperators.ADD) + tail(seg, o, xe, xo, bound, half);
        y[yo + 1] = e1.add(d1).reduceLanes(VectorOperators.ADD) + tail(seg, o + rowBytes, xe, xo, bound, half);
        y[yo + 2] = e2.add(d2).reduceLanes(VectorOperators.ADD) + tail(seg, o + 2 * rowBytes, xe, xo, bound, half);
        y[yo + 3] = e3.add(d3).reduceLanes(VectorOperators.ADD) + tail(seg, o + 3 * rowBytes, xe, xo, bound, half);
    }

    private static float row(MemorySegment seg, int cols, float[] xe, float[] xo, int r) {
        int half = cols / 2, bound = I.loopBound(half);
        long o = r * 2L * cols;
        FloatVector e = FloatVector.zero(F), d = e;
        for (int k = 0; k < bound; k += I.length()) {
            IntVector v = IntVector.fromMemorySegment(I, seg, o + 4L * k, ByteOrder.LITTLE_ENDIAN);
            e = even(v).fma(FloatVector.fromArray(F, xe, k), e);
            d = odd(v).fma(FloatVector.fromArray(F, xo, k), d);
        }
        return e.add(d).reduceLanes(VectorOperators.ADD) + tail(seg, o, xe, xo, bound, half);
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.and(0xFFFF0000).reinterpretAsFloats();
    }

    /** The element pairs past the last full vector, scalar. */
    private static float tail(MemorySegment seg, long rowOff, float[] xe, float[] xo, int from, int half) {
        float s = 0f;
        for (int k = from; k < half; k++) {
            int pair = seg.get(PAIR, rowOff + 4L * k);
            s += Float.intBitsToFloat(pair << 16) * xe[k] + Float.intBitsToFloat(pair & 0xFFFF0000) * xo[k];
        }
        return s;
    }
}
