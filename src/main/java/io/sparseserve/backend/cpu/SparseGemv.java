package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
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

/**
 * Matrix times one vector for compressed sparse BF16 weights ({@link MaskedMatrix}), the decode hot path of a pruned
 * model, fused so that only the kept values and the bitmask are read: for each vector of columns, the mask bits say
 * which lanes are kept, that many values are loaded from the row's value stream, widened and spread over the kept
 * lanes ({@code expand}), and multiplied into the sum. A 50% sparse matrix streams 1 + 1/8 bytes per weight
 * instead of the 2 of dense.
 *
 * <p>The arithmetic per row is that of {@link CpuMatmul}'s panel kernel, which serves several tokens (blocks of
 * {@link CpuMatmul#K_BLOCK} columns, one vector accumulator per block, its sum plus the block's scalar tail added
 * to the row's total, starting from the bias): a sequence's logits do not depend on whether it was decoded alone
 * or in a batch.
 */
final class SparseGemv {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int LANES = F.length();
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;

    private SparseGemv() {}

    /** One token over compressed BF16 weights, with vectors of 8 or 16 lanes (a whole number of mask bytes). */
    static boolean applies(WeightMatrix w, int tokens) {
        return tokens == 1 && w instanceof MaskedMatrix && w.dtype() == DType.BF16 && (LANES == 8 || LANES == 16);
    }

    /**
     * y[yOff + r] for rows r, r + q, r + 2q, r + 3q at once: four value streams and four mask streams. buf: scratch of
     * 4 {@link Lanes#N} floats for the four sums, added in scalar code (as {@code CpuMatmul.tile4x4} does): when one
     * JVM runs both sparse formats (bench --compare), the type checks use up C2's node budget and a reduction taking
     * vectors was called out of line with its vectors boxed (batch-1 decode at a third of its speed, measured).
     */
    static void panel(MaskedMatrix w, float[] x, float[] y, int yOff, float[] bias, int r, int q, float[] buf) {
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q;
        MemorySegment vals = w.values();
        // A vector load reads LANES values from a row's position: it must not run past the last value.
        if (w.valueIndex(r3 + 1) + LANES > vals.byteSize() / 2) {
            row(w, x, y, yOff, bias, r);
            row(w, x, y, yOff, bias, r1);
            row(w, x, y, yOff, bias, r2);
            row(w, x, y, yOff, bias, r3);
            return;
        }
        MemorySegment mask = w.bitmask();
        int cols = w.cols(), rb = w.maskRowBytes();
        long p0 = w.valueIndex(r), p1 = w.valueIndex(r1), p2 = w.valueIndex(r2), p3 = w.valueIndex(r3);
        long m0 = (long) r * rb, m1 = (long) r1 * rb, m2 = (long) r2 * rb, m3 = (long) r3 * rb;
        float y0 = bias == null ? 0f : bias[r], y1 = bias == null ? 0f : bias[r1];
        float y2 = bias == null ? 0f : bias[r2], y3 = bias == null ? 0f : bias[r3];
        for (int k0 = 0; k0 < cols; k0 += CpuMatmul.K_BLOCK) {
            int len = Math.min(CpuMatmul.K_BLOCK, cols - k0), end = k0 + F.loopBound(len);
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            for (int c = k0; c < end; c += LANES) {
                FloatVector xv = FloatVector.fromArray(F, x, c);
                long b0 = bits(mask, m0, c), b1 = bits(mask, m1, c), b2 = bits(mask, m2, c), b3 = bits(mask, m3, c);
                a0 = kept(vals, p0, b0).fma(xv, a0);
                a1 = kept(vals, p1, b1).fma(xv, a1);
                a2 = kept(vals, p2, b2).fma(xv, a2);
                a3 = kept(vals, p3, b3).fma(xv, a3);
                p0 += Long.bitCount(b0);
                p1 += Long.bitCount(b1);
                p2 += Long.bitCount(b2);
                p3 += Long.bitCount(b3);
            }
            float t0 = 0f, t1 = 0f, t2 = 0f, t3 = 0f;
            for (int c = end; c < k0 + len; c++) {
                if (bit(mask, m0, c)) t0 += value(vals, p0++) * x[c]; else t0 += 0f * x[c];
                if (bit(mask, m1, c)) t1 += value(vals, p1++) * x[c]; else t1 += 0f * x[c];
                if (bit(mask, m2, c)) t2 += value(vals, p2++) * x[c]; else t2 += 0f * x[c];
                if (bit(mask, m3, c)) t3 += value(vals, p3++) * x[c]; else t3 += 0f * x[c];
            }
            int n = Lanes.N;
            a0.intoArray(buf, 0);
            a1.intoArray(buf, n);
            a2.intoArray(buf, 2 * n);
            a3.intoArray(buf, 3 * n);
            Lanes.sums(buf, 4);
            y0 += buf[0] + t0;
            y1 += buf[1] + t1;
            y2 += buf[2] + t2;
            y3 += buf[3] + t3;
        }
        y[yOff + r] = y0;
        y[yOff + r1] = y1;
        y[yOff + r2] = y2;
        y[yOff + r3] = y3;
    }

    /** y[yOff + r] alone, with loads masked to the values that exist (the matrix's last rows, leftover rows). */
    static void row(MaskedMatrix w, float[] x, float[] y, int yOff, float[] bias, int r) {
        MemorySegment vals = w.values(), mask = w.bitmask();
        long nValues = vals.byteSize() / 2;
        int cols = w.cols();
        long p = w.valueIndex(r), m = (long) r * w.maskRowBytes();
        float acc = bias == null ? 0f : bias[r];
        for (int k0 = 0; k0 < cols; k0 += CpuMatmul.K_BLOCK) {
            int len = Math.min(CpuMatmul.K_BLOCK, cols - k0), end = k0 + F.loopBound(len);
            FloatVector a = FloatVector.zero(F);
            for (int c = k0; c < end; c += LANES) {
                long b = bits(mask, m, c);
                VectorMask<Short> exists = S.indexInRange(p, nValues);
                ShortVector s = ShortVector.fromMemorySegment(S, vals, 2 * p, ByteOrder.LITTLE_ENDIAN, exists);
                a = widen(s).expand(VectorMask.fromLong(F, b)).fma(FloatVector.fromArray(F, x, c), a);
                p += Long.bitCount(b);
            }
            float t = 0f;
            for (int c = end; c < k0 + len; c++) {
                if (bit(mask, m, c)) t += value(vals, p++) * x[c]; else t += 0f * x[c];
            }
            acc += Lanes.sum(a) + t;
        }
        y[yOff + r] = acc;
    }

    /** The mask bits of columns [c, c + LANES) of the row whose mask starts at byte m (c a multiple of LANES). */
    private static long bits(MemorySegment mask, long m, int c) {
        long at = m + (c >>> 3);
        return LANES == 16 ? mask.get(I16, at) & 0xffffL : mask.get(U8, at) & 0xffL;
    }

    private static boolean bit(MemorySegment mask, long m, int c) {
        return (mask.get(U8, m + (c >>> 3)) >>> (c & 7) & 1) != 0;
    }

    /** LANES values from position p, widened, spread over the lanes whose bits are set (zero elsewhere). */
    private static FloatVector kept(MemorySegment vals, long p, long bits) {
        return widen(ShortVector.fromMemorySegment(S, vals, 2 * p, ByteOrder.LITTLE_ENDIAN)).expand(VectorMask.fromLong(F, bits));
    }

    private static FloatVector widen(ShortVector s) {
        IntVector w = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static float value(MemorySegment vals, long p) {
        return Float.intBitsToFloat(vals.get(I16, 2 * p) << 16);
    }
}
