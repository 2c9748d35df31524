package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
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

/**
 * Prompt tokens over compressed sparse weights ({@link MaskedMatrix}), doing only the kept values' work: tokens in
 * the vector lanes. The prompt's token rows are transposed into blocks of {@link #TB} tokens ([block][column][token]);
 * each output row's kept values are listed once per call (column, value as a float), and each kept value is one
 * broadcast times the column's token vectors, added into the row's accumulators: at 50% sparsity half of dense's
 * multiply-adds, at 70% less than a third, and no mask work in the inner loop. A panel of {@link #PANEL_ROWS} rows
 * is listed at a time and run over every block in chunks of {@link #CC} columns, so the lists are read from cache
 * and a chunk of the block stays in L1 while every row of the panel uses it.
 *
 * <p>The arithmetic per (row, token) is the same whatever the other tokens, the block, the panel or the thread: the
 * row's kept values in column order, multiply-added alternately into two sums (both from zero), the alternation
 * starting with the first sum at every chunk of {@link #CC} columns; the result is the first sum plus the second,
 * plus the bias ({@link #reference}). Measured (one thread, [2048, 768] BF16, 256 tokens, Xeon with AVX-512): 50%
 * 0.25 ns per token per 16 columns of a row against dense's 0.55, 70% 0.19; the inner loop runs at about one
 * 16-lane multiply-add per cycle, bound by its loads (each kept value reads eight vectors of tokens).
 *
 * <p>That is not the decode kernels' order ({@link SparseGemv}: lanes by column, a tree over the lanes), so a prompt
 * token's activations differ from what decode would give in the last bits; the engine runs prompt tokens here and
 * generated tokens (decoded, or recomputed after a preemption) on the decode arithmetic, so that neither batching
 * nor recomputation changes a result (see {@code Step}'s prompt end).
 */
final class SparsePrompt {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final int L = F.length();
    /** Vectors of tokens per block, and tokens per block. */
    static final int V = 8, TB = V * L;
    /**
     * Rows listed at a time (per thread): they share each chunk of xt while it is in the L1 cache. 32 measured 3-8%
     * faster than 16 in a whole prefill (Xeon, 110M shape), and no slower than 64 or 128.
     */
    static final int PANEL_ROWS = Integer.getInteger("sparseserve.promptPanel", 32);
    /**
     * Columns per chunk: a chunk of a block of xt (CC * TB floats, 32 KB) stays in the L1 cache while a panel runs over
     * it. Part of the arithmetic (the chains restart their alternation at every chunk), so a constant.
     */
    static final int CC = 64;
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfByte U8 = ValueLayout.JAVA_BYTE;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ByteOrder LE = ByteOrder.nativeOrder();
    private static final long VB = 4L * L; // bytes of one vector
    private static final boolean VECTOR_LIST = L == 8 || L == 16;
    private static final IntVector IOTA_TB = IntVector.zero(I).addIndex(TB);

    private SparsePrompt() {}

    static int blocks(int n) {
        return (n + TB - 1) / TB;
    }

    /** Floats of the transposed input of n tokens of cols columns. */
    static int transposedSize(int n, int cols) {
        return blocks(n) * cols * TB;
    }

    /**
     * Transposes token rows of x into xt: the i-th token (x row {@code rows[i]}, or i when rows is null, at xOff + row *
     * cols) goes to block i / TB, lane i % TB; the lanes past n are zero.
     */
    static void transpose(float[] x, int xOff, int[] rows, int n, int cols, MemorySegment xt) {
        transpose(x, xOff, rows, n, cols, xt, 0, cols);
    }

    /**
     * Columns [c0, c1) of {@link #transpose(float[], int, int[], int, int, MemorySegment)}, lanes past n included
     * (zero), so that threads can share the work. Eight columns at a time: each token row gives a few consecutive
     * floats, each written to its own column's run of lanes.
     */
    static void transpose(float[] x, int xOff, int[] rows, int n, int cols, MemorySegment xt, int c0, int c1) {
        int nb = blocks(n);
        for (int b = 0; b < nb; b++) {
            int t0 = b * TB, t1 = Math.min(n, t0 + TB);
            long base = 4L * b * cols * TB;
            for (int cs = c0; cs < c1; cs += 8) {
                int ce = Math.min(c1, cs + 8);
                for (int t = t0; t < t1; t++) {
                    int src = xOff + (rows == null ? t : rows[t]) * cols;
                    long dst = base + 4L * (t - t0);
                    for (int c = cs; c < ce; c++) xt.set(F32, dst + 4L * c * TB, x[src + c]);
                }
                if (t1 - t0 < TB) {
                    for (int c = cs; c < ce; c++) {
                        xt.asSlice(base + 4L * (c * TB + t1 - t0), 4L * (TB - (t1 - t0))).fill((byte) 0);
                    }
                }
            }
        }
    }

    /** Capacity of the kept-value lists of one row: the vector list writes whole vectors. */
    static int listCapacity(int cols) {
        return cols + 2 * L;
    }

    /**
     * Lists row r's kept values in column order from {@code at}: idx[at + k] = column * TB (an offset into a block of
     * xt), val[at + k] the value as a float. Returns their number.
     */
    static int list(MaskedMatrix w, int r, int[] idx, float[] val, int at, int[] starts, int so) {
        int k = columns(w, r, idx, at, starts, so);
        values(w, w.valueIndex(r), k, val, at);
        return k;
    }

    // list's two halves are methods of their own: C2 inlines the Vector API's calls only within a node budget per
    // compiled method, and a call it does not inline runs the API's allocating Java fallback (measured: a prefill
    // three times slower when one method held both loops).

    /** The columns of row r's kept values (times TB) into idx from at, and each chunk's first into starts[so..]. */
    private static int columns(MaskedMatrix w, int r, int[] idx, int at, int[] starts, int so) {
        MemorySegment mask = w.bitmask();
        int cols = w.cols();
        long m = (long) r * w.maskRowBytes();
        int k = 0, c0 = 0;
        if (VECTOR_LIST) {
            for (; c0 + L <= cols; c0 += L) {
                if (c0 % CC == 0) starts[so + c0 / CC] = k;
                long at8 = m + (c0 >>> 3);
                long bits = L == 16 ? mask.get(I16, at8) & 0xffffL : mask.get(U8, at8) & 0xffL;
                IOTA_TB.add(c0 * TB).compress(VectorMask.fromLong(I, bits)).intoArray(idx, at + k);
                k += Long.bitCount(bits);
            }
        }
        for (; c0 < cols; c0 += 8) {
            if (c0 % CC == 0) starts[so + c0 / CC] = k;
            int bits = mask.get(U8, m + (c0 >>> 3)) & 0xff;
            while (bits != 0) {
                idx[at + k++] = (c0 + Integer.numberOfTrailingZeros(bits)) * TB;
                bits &= bits - 1;
            }
        }
        starts[so + chunks(cols)] = k;
        return k;
    }

    /** The k values from index p of w's values, as floats, into val from at. */
    private static void values(MaskedMatrix w, long p, int k, float[] val, int at) {
        MemorySegment vals = w.values();
        DType dt = w.dtype();
        long nValues = vals.byteSize() / dt.bytes();
        int j = 0;
        if (dt == DType.BF16 && VECTOR_LIST) {
            // Whole vectors while they stay within the values (one bound: a loop with two exit tests here kept C2
            // deoptimizing on a profile-based predicate, dozens of times per second, measured).
            int vecEnd = (int) Math.max(0, Math.min(k, nValues - p - L + 1));
            for (; j < vecEnd; j += L) {
                ShortVector s = ShortVector.fromMemorySegment(S, vals, 2 * (p + j), ByteOrder.LITTLE_ENDIAN);
                IntVector wide = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
                wide.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(val, at + j);
            }
        }
        for (; j < k; j++) val[at + j] = DTypeConvert.getFloat(vals, dt, p + j);
    }

    static int chunks(int cols) {
        return (cols + CC - 1) / CC;
    }

    /**
     * Kept values [from, to) of a listed row (one chunk's) times a block of xt at base, added alternately into the row's
     * two chains of TB lanes each, the first into the first chain; the chains are held in st at so and so + TB. One
     * chain at a time, written out for V vectors of tokens: eight independent accumulators keep both FMA units busy,
     * and a method this small stays within C2's inlining budget (one that ran both chains at once did not, and called
     * part of the Vector API out of line: prefill at half speed, measured).
     */
    static void accumulate(int[] idx, float[] val, int from, int to, MemorySegment xt, int base, float[] st, int so,
                           int width) {
        for (int chain = 0; chain < 2 && from + chain < to; chain++) {
            // A block of few tokens (a short prompt) multiplies only the vectors that hold them.
            if (width <= L) chain1(idx, val, from + chain, to, xt, base, st, so + chain * TB);
            else if (width <= TB / 2) chain4(idx, val, from + chain, to, xt, base, st, so + chain * TB);
            else chain8(idx, val, from + chain, to, xt, base, st, so + chain * TB);
        }
    }

    /** Kept values from, from + 2, ... below to, into the chain of V vectors at st[so..]. */
    private static void chain8(int[] idx, float[] val, int from, int to, MemorySegment xt, int base, float[] st, int so) {
        FloatVector a0 = FloatVector.fromArray(F, st, so + 0 * L);
        FloatVector a1 = FloatVector.fromArray(F, st, so + 1 * L);
        FloatVector a2 = FloatVector.fromArray(F, st, so + 2 * L);
        FloatVector a3 = FloatVector.fromArray(F, st, so + 3 * L);
        FloatVector a4 = FloatVector.fromArray(F, st, so + 4 * L);
        FloatVector a5 = FloatVector.fromArray(F, st, so + 5 * L);
        FloatVector a6 = FloatVector.fromArray(F, st, so + 6 * L);
        FloatVector a7 = FloatVector.fromArray(F, st, so + 7 * L);
        long b = 4L * base;
        for (int k = from; k < to; k += 2) {
            long o = b + 4L * idx[k];
            FloatVector w = FloatVector.broadcast(F, val[k]);
            a0 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 0 * VB, LE), a0);
            a1 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 1 * VB, LE), a1);
            a2 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 2 * VB, LE), a2);
            a3 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 3 * VB, LE), a3);
            a4 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 4 * VB, LE), a4);
            a5 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 5 * VB, LE), a5);
            a6 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 6 * VB, LE), a6);
            a7 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 7 * VB, LE), a7);
        }
        a0.intoArray(st, so + 0 * L);
        a1.intoArray(st, so + 1 * L);
        a2.intoArray(st, so + 2 * L);
        a3.intoArray(st, so + 3 * L);
        a4.intoArray(st, so + 4 * L);
        a5.intoArray(st, so + 5 * L);
        a6.intoArray(st, so + 6 * L);
        a7.intoArray(st, so + 7 * L);
    }

    /** {@link #chain8} for a block of at most TB / 2 tokens. */
    private static void chain4(int[] idx, float[] val, int from, int to, MemorySegment xt, int base, float[] st, int so) {
        FloatVector a0 = FloatVector.fromArray(F, st, so + 0 * L);
        FloatVector a1 = FloatVector.fromArray(F, st, so + 1 * L);
        FloatVector a2 = FloatVector.fromArray(F, st, so + 2 * L);
        FloatVector a3 = FloatVector.fromArray(F, st, so + 3 * L);
        long b = 4L * base;
        for (int k = from; k < to; k += 2) {
            long o = b + 4L * idx[k];
            FloatVector w = FloatVector.broadcast(F, val[k]);
            a0 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 0 * VB, LE), a0);
            a1 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 1 * VB, LE), a1);
            a2 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 2 * VB, LE), a2);
            a3 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 3 * VB, LE), a3);
        }
        a0.intoArray(st, so + 0 * L);
        a1.intoArray(st, so + 1 * L);
        a2.intoArray(st, so + 2 * L);
        a3.intoArray(st, so + 3 * L);
    }

    /** {@link #chain8} for a block of at most L tokens. */
    private static void chain1(int[] idx, float[] val, int from, int to, MemorySegment xt, int base, float[] st, int so) {
        FloatVector a0 = FloatVector.fromArray(F, st, so + 0 * L);
        long b = 4L * base;
        for (int k = from; k < to; k += 2) {
            long o = b + 4L * idx[k];
            FloatVector w = FloatVector.broadcast(F, val[k]);
            a0 = w.fma(FloatVector.fromMemorySegment(F, xt, o + 0 * VB, LE), a0);
        }
        a0.intoArray(st, so + 0 * L);
    }

    /** Panel row i over chunk j: {@link #accumulate}, or {@link #both2} for a block of L + 1 to 2 L tokens. */
    private static void one(int[] idx, float[] val, int[] starts, int i, int nc, int j, int cap, MemorySegment xt,
                            int base, float[] st, int width) {
        int s = starts[i * (nc + 1) + j], e = starts[i * (nc + 1) + j + 1];
        if (s == e) return;
        if (width > L && width <= 2 * L) both2(idx, val, i * cap + s, i * cap + e, xt, base, st, i * 2 * TB);
        else accumulate(idx, val, i * cap + s, i * cap + e, xt, base, st, i * 2 * TB, width);
    }

    /**
     * Kept values [from, to) of one row into both its chains at once, two vectors of tokens each (a block of L + 1 to
     * 2 L tokens): accumulate's order, four accumulators.
     */
    private static void both2(int[] idx, float[] val, int from, int to, MemorySegment xt, int base, float[] st, int so) {
        FloatVector a = FloatVector.fromArray(F, st, so), c = FloatVector.fromArray(F, st, so + L);
        FloatVector b = FloatVector.fromArray(F, st, so + TB), d = FloatVector.fromArray(F, st, so + TB + L);
        long o = 4L * base;
        int k = from;
        for (; k + 1 < to; k += 2) {
            long x0 = o + 4L * idx[k], x1 = o + 4L * idx[k + 1];
            FloatVector w0 = FloatVector.broadcast(F, val[k]), w1 = FloatVector.broadcast(F, val[k + 1]);
            a = w0.fma(FloatVector.fromMemorySegment(F, xt, x0, LE), a);
            c = w0.fma(FloatVector.fromMemorySegment(F, xt, x0 + VB, LE), c);
            b = w1.fma(FloatVector.fromMemorySegment(F, xt, x1, LE), b);
            d = w1.fma(FloatVector.fromMemorySegment(F, xt, x1 + VB, LE), d);
        }
        if (k < to) {
            long x0 = o + 4L * idx[k];
            FloatVector w0 = FloatVector.broadcast(F, val[k]);
            a = w0.fma(FloatVector.fromMemorySegment(F, xt, x0, LE), a);
            c = w0.fma(FloatVector.fromMemorySegment(F, xt, x0 + VB, LE), c);
        }
        a.intoArray(st, so);
        c.intoArray(st, so + L);
        b.intoArray(st, so + TB);
        d.intoArray(st, so + TB + L);
    }

    /**
     * Panel rows i and i+1 over chunk j, a block of L + 1 to 2 L tokens: their pairs of kept values in one loop while
     * both rows have one (eight accumulators), each row's rest by {@link #both2}. A row's values m and m + 1 of the
     * chunk (m even) go to its first and second chain: accumulate's order. The blocks of a prompt of 17 to 32
     * tokens ran on accumulate's four-vector chains, half of them empty, one dependent chain at a time.
     */
    private static void two(int[] idx, float[] val, int[] starts, int i, int nc, int j, int cap, MemorySegment xt,
                            int base, float[] st) {
        int n1 = nc + 1, at = i * n1 + j;
        int s0 = starts[at], s1 = starts[at + n1], e0 = starts[at + 1], e1 = starts[at + n1 + 1];
        int pairs = Math.min(e0 - s0, e1 - s1) & ~1; // values, in whole pairs
        int k0 = i * cap + s0, k1 = (i + 1) * cap + s1;
        int so = i * 2 * TB;
        if (pairs > 0) {
            FloatVector a0 = FloatVector.fromArray(F, st, so), c0 = FloatVector.fromArray(F, st, so + L);
            FloatVector b0 = FloatVector.fromArray(F, st, so + TB), d0 = FloatVector.fromArray(F, st, so + TB + L);
            FloatVector a1 = FloatVector.fromArray(F, st, so + 2 * TB), c1 = FloatVector.fromArray(F, st, so + 2 * TB + L);
            FloatVector b1 = FloatVector.fromArray(F, st, so + 3 * TB), d1 = FloatVector.fromArray(F, st, so + 3 * TB + L);
            long o = 4L * base;
            for (int m = 0; m < pairs; m += 2) {
                long x0 = o + 4L * idx[k0 + m], x1 = o + 4L * idx[k0 + m + 1];
                FloatVector w0 = FloatVector.broadcast(F, val[k0 + m]), w1 = FloatVector.broadcast(F, val[k0 + m + 1]);
                a0 = w0.fma(FloatVector.fromMemorySegment(F, xt, x0, LE), a0);
                c0 = w0.fma(FloatVector.fromMemorySegment(F, xt, x0 + VB, LE), c0);
                b0 = w1.fma(FloatVector.fromMemorySegment(F, xt, x1, LE), b0);
                d0 = w1.fma(FloatVector.fromMemorySegment(F, xt, x1 + VB, LE), d0);
                x0 = o + 4L * idx[k1 + m];
                x1 = o + 4L * idx[k1 + m + 1];
                w0 = FloatVector.broadcast(F, val[k1 + m]);
                w1 = FloatVector.broadcast(F, val[k1 + m + 1]);
                a1 = w0.fma(FloatVector.fromMemorySegment(F, xt, x0, LE), a1);
                c1 = w0.fma(FloatVector.fromMemorySegment(F, xt, x0 + VB, LE), c1);
                b1 = w1.fma(FloatVector.fromMemorySegment(F, xt, x1, LE), b1);
                d1 = w1.fma(FloatVector.fromMemorySegment(F, xt, x1 + VB, LE), d1);
            }
            a0.intoArray(st, so);
            c0.intoArray(st, so + L);
            b0.intoArray(st, so + TB);
            d0.intoArray(st, so + TB + L);
            a1.intoArray(st, so + 2 * TB);
            c1.intoArray(st, so + 2 * TB + L);
            b1.intoArray(st, so + 3 * TB);
            d1.intoArray(st, so + 3 * TB + L);
        }
        if (k0 + pairs < i * cap + e0) both2(idx, val, k0 + pairs, i * cap + e0, xt, base, st, so);
        if (k1 + pairs < (i + 1) * cap + e1) both2(idx, val, k1 + pairs, (i + 1) * cap + e1, xt, base, st, so + 2 * TB);
    }

    /** Floats of chain state per panel ({@link #rows}' st). */
    static final int STATE = PANEL_ROWS * 2 * TB;

    /**
     * y = x W^T + bias for the n prompt tokens of x whose rows are listed in {@code tokenRows} (null: rows 0..n), output
     * rows [r0, r1): y[yOff + tokenRow * w.rows() + r]. xt: the tokens transposed ({@link #transpose}); scratch:
     * idx and val of PANEL_ROWS * {@link #listCapacity} each, starts of PANEL_ROWS * (chunks + 1), st of
     * {@link #STATE}.
     */
    static void rows(MaskedMatrix w, MemorySegment xt, int n, int[] tokenRows, float[] y, int yOff, float[] bias, int r0,
                     int r1, int[] idx, float[] val, int[] starts, float[] st) {
        int cols = w.cols(), rows = w.rows(), cap = listCapacity(cols), nb = blocks(n), nc = chunks(cols);
        for (int p0 = r0; p0 < r1; p0 += PANEL_ROWS) {
            int pr = Math.min(PANEL_ROWS, r1 - p0);
            for (int i = 0; i < pr; i++) list(w, p0 + i, idx, val, i * cap, starts, i * (nc + 1));
            for (int b = 0; b < nb; b++) {
                int base = b * cols * TB, t0 = b * TB, t1 = Math.min(n, t0 + TB);
                int width = t1 - t0;
                java.util.Arrays.fill(st, 0, pr * 2 * TB, 0f);
                // A block of L + 1 to 2 L tokens: two rows side by side (two).
                int grouped = width > L && width <= 2 * L ? pr & ~1 : 0;
                for (int j = 0; j < nc; j++) {
                    for (int i = 0; i < grouped; i += 2) two(idx, val, starts, i, nc, j, cap, xt, base, st);
                    for (int i = grouped; i < pr; i++) one(idx, val, starts, i, nc, j, cap, xt, base, st, width);
                }
                // Token by token, the panel's rows side by side: one cache line of y per token, not one per value.
                for (int t = t0; t < t1; t++) {
                    int yo = yOff + (tokenRows == null ? t : tokenRows[t]) * rows + p0;
                    for (int i = 0; i < pr; i++) {
                        float v = st[i * 2 * TB + t - t0] + st[i * 2 * TB + TB + t - t0];
                        y[yo + i] = bias == null ? v : v + bias[p0 + i];
                    }
                }
            }
        }
    }

    /** The arithmetic of {@link #rows} for one (row, token) in scalar code, from the mask and values: for tests. */
    static float reference(MaskedMatrix w, int r, float[] x, int xo, float[] bias) {
        float first = 0f, second = 0f;
        long p = w.valueIndex(r), m = (long) r * w.maskRowBytes();
        int k = 0, inChunk = 0;
        for (int c = 0; c < w.cols(); c++) {
            if (c % CC == 0) inChunk = 0;
            if ((w.bitmask().get(U8, m + (c >>> 3)) >>> (c & 7) & 1) == 0) continue;
            float v = DTypeConvert.getFloat(w.values(), w.dtype(), p + k++);
            if ((inChunk++ & 1) == 0) first = Math.fma(v, x[xo + c], first);
            else second = Math.fma(v, x[xo + c], second);
        }
        float s = first + second;
        return bias == null ? s : s + bias[r];
    }
}
