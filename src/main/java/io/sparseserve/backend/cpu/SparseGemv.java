package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Decode over compressed sparse BF16 weights ({@link MaskedMatrix}), fused so that only the kept values and the
 * bitmask are read, with the arithmetic of dense BF16 ({@link Bf16Gemv}): per step of 32 columns, the 32 mask bits
 * say which columns are kept, that many BF16 values are loaded from the row's position and spread over the kept
 * positions as 16-bit lanes ({@code ShortVector.expand}, one {@code vpexpandw} on AVX-512 VBMI2), which makes 16
 * pairs of columns; shifting a pair's 32-bit lane left by 16 gives the even column as a float, masking its low half
 * the odd one, and the two multiply-add into even and odd accumulators against x split into its even and odd
 * elements. One expand serves 32 columns (the previous kernel widened to floats first and expanded 16 at a time).
 *
 * <p>Batch-1 decode ({@link #panel}, {@link #row}) reads the matrix's {@link MaskedMatrix#block} (values and mask in
 * one segment). Several tokens ({@link #rowsBatched}) decode two rows at a time into a scratch segment of dense BF16
 * with the same expand and run {@link Bf16Gemv}'s tiles over it: every (row, token) gets the arithmetic of batch 1,
 * so a sequence's logits do not depend on its batch, and a dense file with zeros gives the bits of its compressed
 * copy under {@code --compress off} too (a kept-out weight is +0 in both).
 */
final class SparseGemv {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_512;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;

    /**
     * Whether these kernels run here: 16-lane float vectors (AVX-512) and a one-instruction 16-bit expand (VBMI2:
     * Ice Lake and later Xeons, Zen 4 and later EPYCs), read from /proc/cpuinfo. Elsewhere the Vector API would run
     * the expand in Java, element by element; sparse products then take {@link CpuMatmul}'s general path, batch 1 and
     * batches alike.
     */
    static final boolean SUPPORTED = F.length() == 16 && cpuFlag("avx512_vbmi2");

    private SparseGemv() {}

    /** Compressed BF16 with an even width whose values and mask share one segment, on a machine that has the kernels. */
    static boolean applies(WeightMatrix w) {
        return SUPPORTED && w instanceof MaskedMatrix m && m.dtype() == DType.BF16 && m.cols() % 2 == 0 && m.block() != null;
    }

    /**
     * y[yOff + r] for rows r, r + q, r + 2q, r + 3q at once (four streams through memory, as {@link Bf16Gemv#panel}),
     * x split into xe and xo ({@link Bf16Gemv#split}). buf: scratch of 4 {@link Lanes#N} floats for the four sums,
     * added in scalar code (with both sparse classes behind w's calls, C2 ran out of nodes here and boxed a
     * reduction taking vectors; measured with the previous kernel).
     */
    static void panel(MaskedMatrix w, float[] xe, float[] xo, float[] y, int yOff, float[] bias, int r, int q, float[] buf) {
        int r1 = r + q, r2 = r1 + q, r3 = r2 + q, rb = w.maskRowBytes(), half = w.cols() / 2, bound = I.loopBound(half);
        long mask = w.maskAt();
        MemorySegment b = w.block();
        // Rows r, r + q, then r + 2q, r + 3q, from one call site: C2 inlines the loop once (two inlined copies, or four
        // rows in one loop, ran out of C2's nodes and left vector operations out of line, boxed).
        for (int h = 0; h < 2; h++) {
            int a = r + 2 * h * q, c = a + q;
            sums2(b, 2 * w.valueIndex(a), 2 * w.valueIndex(c), mask + (long) a * rb, mask + (long) c * rb, xe, xo, bound, buf,
                    2 * h * Lanes.N);
        }
        Lanes.sums(buf, 4);
        // Sum, tail, then bias: Bf16Gemv's order.
        float y0 = buf[0] + tail(w, r, xe, xo, bound, half);
        float y1 = buf[1] + tail(w, r1, xe, xo, bound, half);
        float y2 = buf[2] + tail(w, r2, xe, xo, bound, half);
        float y3 = buf[3] + tail(w, r3, xe, xo, bound, half);
        if (bias != null) {
            y0 += bias[r];
            y1 += bias[r1];
            y2 += bias[r2];
            y3 += bias[r3];
        }
        y[yOff + r] = y0;
        y[yOff + r1] = y1;
        y[yOff + r2] = y2;
        y[yOff + r3] = y3;
    }

    /**
     * The vector part of two rows whose values start at bytes p0, p1 and masks at m0, m1 of block b: each row's even
     * plus odd accumulator into buf at {@code at} and {@code at + N}. Only primitives and the block, and two rows, not
     * four: with the row lookups and tails in the loop's method, or four rows in the loop, C2 ran out of nodes and
     * called vector operations out of line, boxed (batch-1 decode at a tenth of its speed, measured).
     */
    private static void sums2(MemorySegment b, long p0, long p1, long m0, long m1, float[] xe, float[] xo, int bound,
                              float[] buf, int at) {
        FloatVector e0 = FloatVector.zero(F), e1 = e0, d0 = e0, d1 = e0;
        for (int k = 0; k < bound; k += 16) {
            FloatVector ve = FloatVector.fromArray(F, xe, k), vo = FloatVector.fromArray(F, xo, k);
            long c = k >>> 2; // the mask byte of column 2k
            long b0 = bits(b, m0 + c), b1 = bits(b, m1 + c);
            IntVector v = spread(b, p0, b0);
            e0 = even(v).fma(ve, e0);
            d0 = odd(v).fma(vo, d0);
            v = spread(b, p1, b1);
            e1 = even(v).fma(ve, e1);
            d1 = odd(v).fma(vo, d1);
            p0 += 2 * Long.bitCount(b0);
            p1 += 2 * Long.bitCount(b1);
        }
        e0.add(d0).intoArray(buf, at);
        e1.add(d1).intoArray(buf, at + Lanes.N);
    }

    /** y[yOff + r] alone (the rows past a thread's last panel): one row of {@link #panel}. */
    static void row(MaskedMatrix w, float[] xe, float[] xo, float[] y, int yOff, float[] bias, int r) {
        MemorySegment b = w.block();
        int cols = w.cols(), half = cols / 2, bound = I.loopBound(half);
        long p = 2 * w.valueIndex(r), m = w.maskAt() + (long) r * w.maskRowBytes();
        FloatVector e = FloatVector.zero(F), d = e;
        for (int k = 0; k < bound; k += 16) {
            long bits = bits(b, m + (k >>> 2));
            IntVector v = spread(b, p, bits);
            e = even(v).fma(FloatVector.fromArray(F, xe, k), e);
            d = odd(v).fma(FloatVector.fromArray(F, xo, k), d);
            p += 2 * Long.bitCount(bits);
        }
        float s = Lanes.sum(e.add(d)) + tail(w, r, xe, xo, bound, half);
        y[yOff + r] = bias == null ? s : s + bias[r];
    }

    /**
     * Rows [r0, r1) for T tokens (token t's halves of x at {@code t * cols / 2}): rows r and r + q decoded into
     * planes (scratch: 2 cols floats: each row's even columns, then its odd ones, as floats) and multiplied in tiles
     * of 2 rows x 4 (or 2, or 1) tokens with {@link Bf16Gemv#rowsBatched}'s arithmetic, the widening done once per
     * row instead of once per tile.
     */
    static void rowsBatched(MaskedMatrix w, float[] xe, float[] xo, int tokens, float[] y, int yOff, float[] bias,
                            int r0, int r1, float[] planes, float[] buf) {
        int rows = w.rows(), cols = w.cols(), half = cols / 2;
        int q = (r1 - r0) / 2;
        for (int r = r0; r < r0 + q; r++) {
            decode(w, r, planes, 0);
            decode(w, r + q, planes, cols);
            int t = 0, yo = yOff + r;
            for (; t + 4 <= tokens; t += 4) tile2x4(planes, cols, half, xe, xo, t * half, y, yo + t * rows, rows, q, buf);
            for (; t < tokens; t++) {
                y[yo + t * rows] = row(planes, 0, half, xe, xo, t * half);
                y[yo + t * rows + q] = row(planes, cols, half, xe, xo, t * half);
            }
        }
        for (int r = r0 + 2 * q; r < r1; r++) {
            decode(w, r, planes, 0);
            for (int t = 0; t < tokens; t++) y[yOff + r + t * rows] = row(planes, 0, half, xe, xo, t * half);
        }
        Bf16Gemv.addBias(y, yOff, rows, tokens, bias, r0, r1);
    }

    /** Row r's even columns as floats into dst[o, o + half), its odd ones into dst[o + half, o + 2 half). */
    static void decode(MaskedMatrix w, int r, float[] dst, int o) {
        MemorySegment b = w.block();
        int cols = w.cols(), half = cols / 2, bound = I.loopBound(half);
        long p = 2 * w.valueIndex(r), m = w.maskAt() + (long) r * w.maskRowBytes();
        for (int k = 0; k < bound; k += 16) {
            long bits = bits(b, m + (k >>> 2));
            IntVector v = spread(b, p, bits);
            even(v).intoArray(dst, o + k);
            odd(v).intoArray(dst, o + half + k);
            p += 2 * Long.bitCount(bits);
        }
        for (int c = 2 * bound; c < 2 * half; c++) {
            float v = 0f;
            if ((b.get(U8, m + (c >>> 3)) >>> (c & 7) & 1) != 0) {
                v = Float.intBitsToFloat(b.get(I16, p) << 16);
                p += 2;
            }
            dst[o + (c & 1) * half + c / 2] = v;
        }
    }

    /**
     * The rows whose planes start at 0 and {@code s} (= cols) of p times four tokens whose halves start at x0, x0 +
     * half, ...: Bf16Gemv.tile2x4's fused multiply-adds, accumulators, sums and tails, on weights already widened.
     */
    private static void tile2x4(float[] p, int s, int half, float[] xe, float[] xo, int x0, float[] y, int yo, int ys,
                                int yq, float[] buf) {
        int bound = I.loopBound(half), x1 = x0 + half, x2 = x1 + half, x3 = x2 + half;
        FloatVector e00 = FloatVector.zero(F), d00 = e00, e01 = e00, d01 = e00, e02 = e00, d02 = e00, e03 = e00, d03 = e00;
        FloatVector e10 = e00, d10 = e00, e11 = e00, d11 = e00, e12 = e00, d12 = e00, e13 = e00, d13 = e00;
        for (int k = 0; k < bound; k += 16) {
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

    /** The row whose planes start at o of p times the token whose halves start at xOff: Bf16Gemv's row. */
    private static float row(float[] p, int o, int half, float[] xe, float[] xo, int xOff) {
        int bound = I.loopBound(half);
        FloatVector e = FloatVector.zero(F), d = e;
        for (int k = 0; k < bound; k += 16) {
            e = FloatVector.fromArray(F, p, o + k).fma(FloatVector.fromArray(F, xe, xOff + k), e);
            d = FloatVector.fromArray(F, p, o + half + k).fma(FloatVector.fromArray(F, xo, xOff + k), d);
        }
        return Lanes.sum(e.add(d)) + tail(p, o, half, xe, xo, xOff, bound);
    }

    /** Pairs [from, half) of the row whose planes start at o, scalar: Bf16Gemv's tail. */
    private static float tail(float[] p, int o, int half, float[] xe, float[] xo, int xOff, int from) {
        float s = 0f;
        for (int k = from; k < half; k++) s += p[o + k] * xe[xOff + k] + p[o + half + k] * xo[xOff + k];
        return s;
    }

    /** The 32 mask bits at byte {@code at} of the block. */
    private static long bits(MemorySegment b, long at) {
        return b.get(I32, at) & 0xffffffffL;
    }

    /**
     * The 32 columns whose mask bits are {@code bits}, as 16 pairs: the BF16 values from byte p of the block spread
     * over the set bits (a load reads 64 bytes: the block's padding keeps it inside).
     */
    private static IntVector spread(MemorySegment b, long p, long bits) {
        return ShortVector.fromMemorySegment(S, b, p, ByteOrder.LITTLE_ENDIAN).expand(VectorMask.fromLong(S, bits))
                .reinterpretAsInts();
    }

    /**
     * Column pairs [from, half) of row r, scalar: {@link Bf16Gemv}'s tail over the row as it decodes. The tail's values
     * are the row's last ones: they start where the next row's begin, less those its mask bits keep.
     */
    private static float tail(MaskedMatrix w, int r, float[] xe, float[] xo, int from, int half) {
        if (from == half) return 0f;
        MemorySegment b = w.block();
        long m = w.maskAt() + (long) r * w.maskRowBytes(), p = 2 * w.valueIndex(r + 1);
        for (int c = 2 * from; c < 2 * half; c++) p -= 2 * (b.get(U8, m + (c >>> 3)) >>> (c & 7) & 1);
        float s = 0f;
        for (int k = from; k < half; k++) {
            float we = 0f, wo = 0f;
            int c = 2 * k;
            if ((b.get(U8, m + (c >>> 3)) >>> (c & 7) & 1) != 0) {
                we = Float.intBitsToFloat(b.get(I16, p) << 16);
                p += 2;
            }
            c++;
            if ((b.get(U8, m + (c >>> 3)) >>> (c & 7) & 1) != 0) {
                wo = Float.intBitsToFloat(b.get(I16, p) << 16);
                p += 2;
            }
            s += we * xe[k] + wo * xo[k];
        }
        return s;
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.and(0xFFFF0000).reinterpretAsFloats();
    }

    private static boolean cpuFlag(String flag) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("flags")) return (" " + line.substring(line.indexOf(':') + 1) + " ").contains(" " + flag + " ");
            }
        } catch (IOException | RuntimeException e) {
            // Not Linux, or not readable: the general path.
        }
        return false;
    }
}
