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
 * <p>Batch-1 decode ({@link #pair}, {@link #row}) reads the matrix's {@link MaskedMatrix#block} (values and mask in
 * one segment). For several tokens, {@link #decode} expands rows into float planes (even columns, odd columns) that
 * {@link Bf16Gemv#rowsBatched} multiplies in tiles, as it does dense rows: every (row, token) gets the bits of batch
 * 1, so a sequence's logits do not depend on its batch; and a dense file with zeros gives the same bits under {@code
 * --compress off} (a kept-out weight is +0 in both).
 */
final class SparseGemv {
    // 512-bit shapes throughout (SUPPORTED requires them to be the preferred ones): 32 columns per step.
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_512;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_512;
    private static final VectorSpecies<Short> S = ShortVector.SPECIES_512;
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    // A constant rather than and(0xFFFF0000), whose broadcast per use costs C2 nodes in the loop.
    private static final IntVector HIGH = IntVector.broadcast(I, 0xFFFF0000);

    /**
     * Whether these kernels run here: 16-lane float vectors (AVX-512) and a one-instruction 16-bit expand (VBMI2:
     * Ice Lake and later Xeons, Zen 4 and later EPYCs), read from /proc/cpuinfo. Elsewhere the Vector API would run
     * the expand in Java, element by element; sparse products then take {@link CpuMatmul}'s general path, batch 1 and
     * batches alike.
     */
    static final boolean SUPPORTED = FloatVector.SPECIES_PREFERRED.length() == 16 && cpuFlag("avx512_vbmi2");

    private SparseGemv() {}

    /** Compressed BF16 with an even width whose values and mask share one segment, on a machine that has the kernels. */
    static boolean applies(WeightMatrix w) {
        return SUPPORTED && w instanceof MaskedMatrix m && m.dtype() == DType.BF16 && m.cols() % 2 == 0 && m.block() != null;
    }

    /**
     * y[yOff + r] and y[yOff + r + q] (two streams through memory; {@link DecodePass} runs two pairs per panel, four
     * streams as {@link Bf16Gemv#panel}), x split into xe and xo ({@link Bf16Gemv#split}); buf: scratch of 2
     * {@link Lanes#N} floats. Two rows and more bytecode than C2 inlines into a caller (FreqInlineSize, 325): C2
     * compiles this method alone, and its node budget (NodeCountInliningCutoff) holds the loop's vector operations
     * with room to spare. Four rows in one loop, or two pairs inlined into one caller, ran out of nodes in a JVM that
     * had run other kernels: C2 left vector operations out of line, boxed (decode at a tenth of its speed; 6.5 MB
     * allocated per step, measured by DecodeAllocationTest).
     */
    static void pair(MaskedMatrix w, float[] xe, float[] xo, float[] y, int yOff, float[] bias, int r, int q, float[] buf) {
        int r1 = r + q, rb = w.maskRowBytes(), half = w.cols() / 2, bound = I.loopBound(half);
        MemorySegment b = w.block();
        long p0 = 2 * w.valueIndex(r), p1 = 2 * w.valueIndex(r1), m0 = w.maskAt() + (long) r * rb, m1 = m0 + (long) q * rb;
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
        // Through buf in scalar code, and sum, tail, then bias: Bf16Gemv's order.
        e0.add(d0).intoArray(buf, 0);
        e1.add(d1).intoArray(buf, Lanes.N);
        Lanes.sums(buf, 2);
        float y0 = buf[0] + tail(w, r, xe, xo, bound, half);
        float y1 = buf[1] + tail(w, r1, xe, xo, bound, half);
        if (bias != null) {
            y0 += bias[r];
            y1 += bias[r1];
        }
        y[yOff + r] = y0;
        y[yOff + r1] = y1;
    }

    /** y[yOff + r] alone (the rows past a thread's last panel): one row of {@link #pair}. */
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
     * Row r's even columns as floats into dst[o, o + half), its odd ones into dst[o + half, o + 2 half): the planes
     * that {@link Bf16Gemv#rowsBatched} multiplies, so several tokens get batch 1's bits.
     */
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
            if (kept(b, m, c) != 0) {
                v = value(b, p);
                p += 2;
            }
            dst[o + (c & 1) * half + c / 2] = v;
        }
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
        for (int c = 2 * from; c < 2 * half; c++) p -= 2 * kept(b, m, c);
        float s = 0f;
        for (int k = from; k < half; k++) {
            float we = 0f, wo = 0f;
            if (kept(b, m, 2 * k) != 0) {
                we = value(b, p);
                p += 2;
            }
            if (kept(b, m, 2 * k + 1) != 0) {
                wo = value(b, p);
                p += 2;
            }
            s += we * xe[k] + wo * xo[k];
        }
        return s;
    }

    /** Column c's mask bit (1: kept) in the row whose mask starts at byte m of the block. */
    private static int kept(MemorySegment b, long m, int c) {
        return b.get(U8, m + (c >>> 3)) >>> (c & 7) & 1;
    }

    /** The BF16 value at byte p of the block, as a float. */
    private static float value(MemorySegment b, long p) {
        return Float.intBitsToFloat(b.get(I16, p) << 16);
    }

    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static FloatVector odd(IntVector v) {
        return v.and(HIGH).reinterpretAsFloats();
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
