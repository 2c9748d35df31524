package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
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
 *
 * <p>Every dot product ends in {@link Lanes}' fixed-order reduction (four at a time where a kernel has four or more),
 * so a result has the same bits in every JIT tier and on every thread, alone or batched.
 */
final class Bf16Gemv {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfInt PAIR = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Bf16Gemv() {}

    /** Dense BF16 with an even width: every step, one token ({@link DecodePass}) or several ({@link #rowsBatched}). */
    static boolean appliesBatched(Object w) {
        return w instanceof DenseMatrix d && d.dtype() == DType.BF16 && d.cols() % 2 == 0;
    }

    static boolean applies(Object w, int tokens) {
        return tokens == 1 && w instanceof DenseMatrix d && d.dtype() == DType.BF16 && d.cols() % 2 == 0;
    }

    /** Splits x[xOff, xOff + cols) into even elements (xe) and odd elements (xo). */
    static void split(float[] x, int xOff, int cols, float[] xe, float[] xo) {
        split(x, xOff, cols, xe, xo, 0);
    }

    /** Splits one token row into xe and xo at {@code to}. */
    static void split(float[] x, int xOff, int cols, float[] xe, float[] xo, int to) {
        for (int i = 0, n = cols / 2; i < n; i++) {
            xe[to + i] = x[xOff + 2 * i];
            xo[to + i] = x[xOff + 2 * i + 1];
        }
    }

    /** Rows r, r + q, r + 2q, r + 3q at once, sharing the loads of x. Small enough for the JIT to inline it all. */
    static void panel(MemorySegment seg, int cols, float[] xe, float[] xo, float[] y, int yOff, float[] bias, int r, int q) {
        int half = cols / 2, bound = I.loopBound(half);
        long rowBytes = 2L * cols, o = r * rowBytes, s = q * rowBytes;
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, d0 = e0, d1 = e0, d2 = e0, d3 = e0;
        for (int k = 0; k < bound; k += I.length()) {
            FloatVector ve = FloatVector.fromArray(F, xe, k), vo = FloatVector.fromArray(F, xo, k);
            long off = o + 4L * k;
            IntVector v = IntVector.fromMemorySegment(I, seg, off, ByteOrder.LITTLE_ENDIAN);
            e0 = even(v).fma(ve, e0);
            d0 = odd(v).fma(vo, d0);
            v = IntVector.fromMemorySegment(I, seg, off + s, ByteOrder.LITTLE_ENDIAN);
            e1 = even(v).fma(ve, e1);
            d1 = odd(v).fma(vo, d1);
            v = IntVector.fromMemorySegment(I, seg, off + 2 * s, ByteOrder.LITTLE_ENDIAN);
            e2 = even(v).fma(ve, e2);
            d2 = odd(v).fma(vo, d2);
            v = IntVector.fromMemorySegment(I, seg, off + 3 * s, ByteOrder.LITTLE_ENDIAN);
            e3 = even(v).fma(ve, e3);
            d3 = odd(v).fma(vo, d3);
        }
        // Sum, tail, then bias: the order rowsBatched uses, so that a token's result does not depend on its batch.
        FloatVector sums = Lanes.sum4(e0.add(d0), e1.add(d1), e2.add(d2), e3.add(d3));
        float y0 = sums.lane(0) + tail(seg, o, xe, xo, 0, bound, half);
        float y1 = sums.lane(1) + tail(seg, o + s, xe, xo, 0, bound, half);
        float y2 = sums.lane(2) + tail(seg, o + 2 * s, xe, xo, 0, bound, half);
        float y3 = sums.lane(3) + tail(seg, o + 3 * s, xe, xo, 0, bound, half);
        if (bias != null) {
            y0 += bias[r];
            y1 += bias[r + q];
            y2 += bias[r + 2 * q];
            y3 += bias[r + 3 * q];
        }
        y[yOff + r] = y0;
        y[yOff + r + q] = y1;
        y[yOff + r + 2 * q] = y2;
        y[yOff + r + 3 * q] = y3;
    }

    static float row(MemorySegment seg, int cols, float[] xe, float[] xo, int r) {
        int half = cols / 2, bound = I.loopBound(half);
        long o = r * 2L * cols;
        FloatVector e = FloatVector.zero(F), d = e;
        for (int k = 0; k < bound; k += I.length()) {
            IntVector v = IntVector.fromMemorySegment(I, seg, o + 4L * k, ByteOrder.LITTLE_ENDIAN);
            e = even(v).fma(FloatVector.fromArray(F, xe, k), e);
            d = odd(v).fma(FloatVector.fromArray(F, xo, k), d);
        }
        return Lanes.sum(e.add(d)) + tail(seg, o, xe, xo, 0, bound, half);
    }

    /**
     * The same product for T token rows (x split per token: token t's halves at {@code t * cols / 2}), with exactly
     * the arithmetic of {@link #row} for every (row, token): the same fused multiply-adds in the same order, the same
     * even/odd accumulators, reduction and tail. A sequence's logits therefore do not depend on whether it was
     * decoded alone or batched with others (continuous batching), while the batch still reads each weight row from
     * memory once: rows r and r + q are widened into float planes (planes: scratch of 2 cols floats; each row's even
     * elements, then its odd ones), which tiles of 2 rows x 4 tokens then share from L1. w: dense BF16 of an even
     * width, or compressed sparse BF16 that {@link SparseGemv#applies} to (its rows expanded into the same planes).
     */
    static void rowsBatched(WeightMatrix w, float[] xe, float[] xo, int tokens, float[] y, int yOff, float[] bias,
                            int r0, int r1, float[] planes, float[] buf) {
        int rows = w.rows(), cols = w.cols(), half = cols / 2;
        // Rows r and r + q together: two long streams through memory, as in panel().
        int q = (r1 - r0) / 2;
        for (int r = r0; r < r0 + q; r++) {
            widen(w, r, planes, 0);
            widen(w, r + q, planes, cols);
            pair(planes, cols, half, xe, xo, tokens, y, yOff + r, rows, q, buf);
        }
        for (int r = r0 + 2 * q; r < r1; r++) {
            widen(w, r, planes, 0);
            for (int t = 0; t < tokens; t++) y[yOff + r + t * rows] = row(planes, 0, half, xe, xo, t * half);
        }
        // After the sums and tails: the order of panel().
        if (bias != null) {
            for (int t = 0; t < tokens; t++) {
                for (int i = r0; i < r1; i++) y[yOff + t * rows + i] += bias[i];
            }
        }
    }

    /** Row r of w as float planes into dst at {@code at}: dense rows widened, compressed ones expanded. */
    private static void widen(WeightMatrix w, int r, float[] dst, int at) {
        if (w instanceof DenseMatrix d) widen(d.data(), r * 2L * d.cols(), d.cols() / 2, dst, at);
        else SparseGemv.decode((MaskedMatrix) w, r, dst, at);
    }

    /** The row at byte offset o of seg as float planes: its even elements into dst[at, at + half), odd ones after. */
    private static void widen(MemorySegment seg, long o, int half, float[] dst, int at) {
        int bound = I.loopBound(half), k = 0;
        for (; k < bound; k += I.length()) {
            IntVector v = IntVector.fromMemorySegment(I, seg, o + 4L * k, ByteOrder.LITTLE_ENDIAN);
            even(v).intoArray(dst, at + k);
            odd(v).intoArray(dst, at + half + k);
        }
        for (; k < half; k++) {
            int pair = seg.get(PAIR, o + 4L * k);
            dst[at + k] = Float.intBitsToFloat(pair << 16);
            dst[at + half + k] = Float.intBitsToFloat(pair & 0xFFFF0000);
        }
    }

    /**
     * Two rows as float planes, at 0 and s of p, times every token: the first row's result for token t goes to y[yo
     * + t * ys], the second's yq further.
     */
    private static void pair(float[] p, int s, int half, float[] xe, float[] xo, int tokens, float[] y, int yo, int ys, int yq,
                             float[] buf) {
        int t = 0;
        for (; t + 4 <= tokens; t += 4) tile2x4(p, s, half, xe, xo, t * half, y, yo + t * ys, ys, yq, buf);
        for (; t < tokens; t++) {
            y[yo + t * ys] = row(p, 0, half, xe, xo, t * half);
            y[yo + t * ys + yq] = row(p, s, half, xe, xo, t * half);
        }
    }

    /**
     * The rows whose planes start at 0 and {@code s} (= cols) of p times four tokens whose halves start at x0, x0 +
     * half, ...: the fused multiply-adds, accumulators, sums and tails of {@link #panel} per (row, token), 16 accumulators.
     */
    private static void tile2x4(float[] p, int s, int half, float[] xe, float[] xo, int x0, float[] y, int yo, int ys,
                                int yq, float[] buf) {
        int bound = I.loopBound(half), x1 = x0 + half, x2 = x1 + half, x3 = x2 + half;
        FloatVector e00 = FloatVector.zero(F), d00 = e00, e01 = e00, d01 = e00, e02 = e00, d02 = e00, e03 = e00, d03 = e00;
        FloatVector e10 = e00, d10 = e00, e11 = e00, d11 = e00, e12 = e00, d12 = e00, e13 = e00, d13 = e00;
        for (int k = 0; k < bound; k += F.length()) {
            FloatVector we0 = FloatVector.fromArray(F, p, k), wo0 = FloatVector.fromArray(F, p, half + k);
            FloatVector we1 = FloatVector.fromArray(F, p, s + k), wo1 = FloatVector.fromArray(F, p, s + half + k);
            FloatVector ve = FloatVector.fromArray(F, xe, x0 + k), vo = FloatVector.fromArray(F, xo, x0 + k);
            e00 = we0.fma(ve, e00);
            d00 = wo0.fma(vo, d00);
            e10 = we1.fma(ve, e10);
            d10 = wo1.fma(vo, d10);
            ve = FloatVector.fromArray(F, xe, x1 + k);
            vo = FloatVector.fromArray(F, xo, x1 + k);
            e01 = we0.fma(ve, e01);
            d01 = wo0.fma(vo, d01);
            e11 = we1.fma(ve, e11);
            d11 = wo1.fma(vo, d11);
            ve = FloatVector.fromArray(F, xe, x2 + k);
            vo = FloatVector.fromArray(F, xo, x2 + k);
            e02 = we0.fma(ve, e02);
            d02 = wo0.fma(vo, d02);
            e12 = we1.fma(ve, e12);
            d12 = wo1.fma(vo, d12);
            ve = FloatVector.fromArray(F, xe, x3 + k);
            vo = FloatVector.fromArray(F, xo, x3 + k);
            e03 = we0.fma(ve, e03);
            d03 = wo0.fma(vo, d03);
            e13 = we1.fma(ve, e13);
            d13 = wo1.fma(vo, d13);
        }
        int n = Lanes.N;
        e00.add(d00).intoArray(buf, 0);
        e01.add(d01).intoArray(buf, n);
        e02.add(d02).intoArray(buf, 2 * n);
        e03.add(d03).intoArray(buf, 3 * n);
        e10.add(d10).intoArray(buf, 4 * n);
        e11.add(d11).intoArray(buf, 5 * n);
        e12.add(d12).intoArray(buf, 6 * n);
        e13.add(d13).intoArray(buf, 7 * n);
        Lanes.sums(buf, 8);
        y[yo] = buf[0] + tail(p, 0, half, xe, xo, x0, bound);
        y[yo + ys] = buf[1] + tail(p, 0, half, xe, xo, x1, bound);
        y[yo + 2 * ys] = buf[2] + tail(p, 0, half, xe, xo, x2, bound);
        y[yo + 3 * ys] = buf[3] + tail(p, 0, half, xe, xo, x3, bound);
        y[yo + yq] = buf[4] + tail(p, s, half, xe, xo, x0, bound);
        y[yo + ys + yq] = buf[5] + tail(p, s, half, xe, xo, x1, bound);
        y[yo + 2 * ys + yq] = buf[6] + tail(p, s, half, xe, xo, x2, bound);
        y[yo + 3 * ys + yq] = buf[7] + tail(p, s, half, xe, xo, x3, bound);
    }

    /** The row whose planes start at o of p times the token whose halves start at xOff: {@link #row}'s arithmetic. */
    private static float row(float[] p, int o, int half, float[] xe, float[] xo, int xOff) {
        int bound = I.loopBound(half);
        FloatVector e = FloatVector.zero(F), d = e;
        for (int k = 0; k < bound; k += F.length()) {
            e = FloatVector.fromArray(F, p, o + k).fma(FloatVector.fromArray(F, xe, xOff + k), e);
            d = FloatVector.fromArray(F, p, o + half + k).fma(FloatVector.fromArray(F, xo, xOff + k), d);
        }
        return Lanes.sum(e.add(d)) + tail(p, o, half, xe, xo, xOff, bound);
    }

    /** Pairs [from, half) of the row whose planes start at o, scalar: {@link #tail}'s arithmetic. */
    private static float tail(float[] p, int o, int half, float[] xe, float[] xo, int xOff, int from) {
        float s = 0f;
        for (int k = from; k < half; k++) s += p[o + k] * xe[xOff + k] + p[o + half + k] * xo[xOff + k];
        return s;
    }

    /** The element pairs [from, half) of the row at rowOff, scalar, for the token whose halves start at xOff. */
    private static float tail(MemorySegment seg, long rowOff, float[] xe, float[] xo, int xOff, int from, int half) {
        float s = 0f;
        for (int k = from; k < half; k++) {
            int pair = seg.get(PAIR, rowOff + 4L * k);
            s += Float.intBitsToFloat(pair << 16) * xe[xOff + k] + Float.intBitsToFloat(pair & 0xFFFF0000) * xo[xOff + k];
        }
        return s;
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.and(0xFFFF0000).reinterpretAsFloats();
    }
}
