package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * y[t, r] = sum_k x[t, k] * W[r, k] (+ bias[r]) for T token rows of activations: the matrix-times-vectors of
 * decode (T = 1, or a few sequences) and the matrix-times-matrix of prefill, with one code path.
 *
 * <p>Threads split the output rows. Each thread walks its rows in panels of {@link #PANEL} rows and the input
 * dimension in blocks of at most {@link #K_BLOCK} columns: the panel is decoded from its storage format into a
 * float32 scratch buffer that stays in L1 and is reused by every token, while the block of activations
 * (T x K_BLOCK floats) stays in L2. The micro-kernel keeps a 4 x 4 tile of dot products in 16 vector registers.
 *
 * <p>Dense BF16 ({@link Bf16Gemv}) and compressed sparse BF16 ({@link SparseGemv}, where the machine has its
 * instructions) have fused kernels of their own, for one token and for several alike. Prompt tokens over compressed
 * sparse weights take {@link SparsePrompt} instead (only the kept values' work), when the caller lists them; the
 * other tokens of the product keep the decode arithmetic.
 */
public final class CpuMatmul {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int PANEL = 4;
    static final int TILE_T = 4;
    static final int K_BLOCK = 1024;

    private final CpuPool pool;
    private final float[][] scratch;
    private final float[][] tileSums; // per thread: tile4x4's 16 accumulators, summed in scalar code
    private final float[][] planes; // per thread: two rows widened into float planes (batched BF16 and sparse products)
    private float[] xEven = new float[0];
    private float[] xOdd = new float[0];
    private final DecodePass decode;
    // One product as a pass of one matrix.
    private final WeightMatrix[] one = new WeightMatrix[1];
    private final float[][] oneY = new float[1][], oneBias = new float[1][];
    private final int[] oneYOff = new int[1];
    // Prompt tokens over sparse weights: the transposed tokens (64-byte aligned: a vector load that straddles two
    // cache lines measured 1.5x slower) and the generated tokens of a mixed product, gathered.
    private MemorySegment xt = MemorySegment.NULL;
    private float[] gx = new float[0], gy = new float[0];
    private int[] otherRows = new int[0];
    private final PromptRows promptTask;
    private final Transpose transposeTask = new Transpose();

    public CpuMatmul(CpuPool pool) {
        this.pool = pool;
        this.scratch = new float[pool.threads()][PANEL * K_BLOCK];
        this.tileSums = new float[pool.threads()][PANEL * TILE_T * Lanes.N];
        this.planes = new float[pool.threads()][0];
        this.decode = new DecodePass(pool.threads());
        this.promptTask = new PromptRows(pool.threads());
    }

    /**
     * x: T rows of w.cols() floats at xOff; y: T rows of w.rows() floats at yOff; bias may be null. Not reentrant:
     * one forward pass at a time per instance (the scheduler thread's); the parallel tasks are fields refilled per
     * call, so that a step allocates nothing.
     */
    public void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias) {
        int rows = w.rows();
        if (DecodePass.applies(w, tokens)) {
            one[0] = w;
            oneY[0] = y;
            oneYOff[0] = yOff;
            oneBias[0] = bias;
            decode(one, oneY, oneYOff, oneBias, 1, x, xOff);
            return;
        }
        if (Bf16Gemv.appliesBatched(w) || SparseGemv.applies(w)) {
            // Several tokens take the same arithmetic per token as one (batch invariance, see Bf16Gemv.rowsBatched).
            int half = w.cols() / 2;
            ensureHalves(tokens * half);
            for (int t = 0; t < tokens; t++) {
                Bf16Gemv.split(x, xOff + t * w.cols(), w.cols(), xEven, xOdd, t * half);
            }
            ensurePlanes(w.cols());
            pool.parallelForClaimed(rows, chunk(rows, PANEL, 8), rowsTask.set(w, xEven, xOdd, 0, tokens, y, yOff, bias, true));
            return;
        }
        pool.parallelForClaimed(rows, chunk(rows, PANEL, 8), rowsTask.set(w, x, null, xOff, tokens, y, yOff, bias, false));
    }

    /**
     * {@link #matmul(WeightMatrix, float[], int, int, float[], int, float[])} where the token rows promptRows[0,
     * promptCount) (ascending) are prompt tokens: over compressed sparse weights those run on {@link SparsePrompt},
     * the others as without the list.
     */
    public void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias,
                       int[] promptRows, int promptCount) {
        if (promptCount == 0 || !(w instanceof MaskedMatrix m)) {
            matmul(w, x, xOff, tokens, y, yOff, bias);
            return;
        }
        int others = prepare(x, xOff, tokens, m.cols(), promptRows, promptCount);
        product(m, others, promptRows, promptCount, y, yOff, bias);
    }

    /** The pass of several matrices with prompt rows: over sparse matrices the prompt rows transposed once for all. */
    public void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases,
                       int[] promptRows, int promptCount) {
        boolean sparse = true;
        for (int m = 0; m < count; m++) sparse &= ws[m] instanceof MaskedMatrix;
        if (promptCount == 0) {
            matmul(ws, count, x, tokens, ys, biases);
        } else if (sparse) {
            int others = prepare(x, 0, tokens, ws[0].cols(), promptRows, promptCount);
            for (int m = 0; m < count; m++) product((MaskedMatrix) ws[m], others, promptRows, promptCount, ys[m], 0, biases[m]);
        } else {
            for (int m = 0; m < count; m++) matmul(ws[m], x, 0, tokens, ys[m], 0, biases[m], promptRows, promptCount);
        }
    }

    /**
     * For products with prompt rows: the other (generated) token rows gathered into gx, their indices into otherRows,
     * and the prompt rows transposed into xt. Returns how many other rows there are.
     */
    private int prepare(float[] x, int xOff, int tokens, int cols, int[] promptRows, int promptCount) {
        int others = tokens - promptCount;
        if (others > 0) {
            if (otherRows.length < others) otherRows = new int[others];
            if (gx.length < others * cols) gx = new float[others * cols];
            for (int t = 0, p = 0, o = 0; t < tokens; t++) {
                if (p < promptCount && promptRows[p] == t) {
                    p++;
                    continue;
                }
                otherRows[o] = t;
                System.arraycopy(x, xOff + t * cols, gx, o++ * cols, cols);
            }
        }
        long bytes = 4L * SparsePrompt.transposedSize(promptCount, cols);
        if (xt.byteSize() < bytes) xt = Arena.ofAuto().allocate(bytes, 64);
        pool.parallelFor(cols, 8, transposeTask.set(x, xOff, promptRows, promptCount, cols, xt));
        return others;
    }

    /**
     * One sparse matrix over the rows {@link #prepare} set up: the generated tokens keep the decode arithmetic (the
     * product of their gathered rows, scattered back), the prompt tokens run on {@link SparsePrompt}.
     */
    private void product(MaskedMatrix w, int others, int[] promptRows, int promptCount, float[] y, int yOff, float[] bias) {
        int rows = w.rows();
        if (others > 0) {
            if (gy.length < others * rows) gy = new float[others * rows];
            matmul(w, gx, 0, others, gy, 0, bias);
            for (int o = 0; o < others; o++) System.arraycopy(gy, o * rows, y, yOff + otherRows[o] * rows, rows);
        }
        pool.parallelForClaimed(rows, chunk(rows, SparsePrompt.PANEL_ROWS, 4), promptTask.set(w, xt, promptCount, promptRows, y, yOff, bias));
    }

    /** Columns [c0, c1) of the prompt rows' transposition ({@link SparsePrompt#transpose}). */
    private static final class Transpose implements CpuPool.RangeTask {
        private float[] x;
        private int xOff, n, cols;
        private int[] rows;
        private MemorySegment xt;

        Transpose set(float[] x, int xOff, int[] rows, int n, int cols, MemorySegment xt) {
            this.x = x;
            this.xOff = xOff;
            this.rows = rows;
            this.n = n;
            this.cols = cols;
            this.xt = xt;
            return this;
        }

        @Override
        public void run(int c0, int c1, int thread) {
            SparsePrompt.transpose(x, xOff, rows, n, cols, xt, c0, c1);
        }
    }

    /** The output rows [r0, r1) of one prompt product ({@link SparsePrompt#rows}), with per-thread scratch. */
    private static final class PromptRows implements CpuPool.RangeTask {
        private final int[][] idx, starts;
        private final float[][] val, st;
        private MaskedMatrix w;
        private MemorySegment xt;
        private int n, yOff;
        private int[] tokenRows;
        private float[] y, bias;

        PromptRows(int threads) {
            idx = new int[threads][0];
            starts = new int[threads][0];
            val = new float[threads][0];
            st = new float[threads][SparsePrompt.STATE];
        }

        PromptRows set(MaskedMatrix w, MemorySegment xt, int n, int[] tokenRows, float[] y, int yOff, float[] bias) {
            int cols = w.cols(), cap = SparsePrompt.PANEL_ROWS * SparsePrompt.listCapacity(cols);
            int nStarts = SparsePrompt.PANEL_ROWS * (SparsePrompt.chunks(cols) + 1);
            for (int t = 0; t < idx.length; t++) {
                if (idx[t].length < cap) {
                    idx[t] = new int[cap];
                    val[t] = new float[cap];
                }
                if (starts[t].length < nStarts) starts[t] = new int[nStarts];
            }
            this.w = w;
            this.xt = xt;
            this.n = n;
            this.tokenRows = tokenRows;
            this.y = y;
            this.yOff = yOff;
            this.bias = bias;
            return this;
        }

        long bytes() {
            long n = 0;
            for (int t = 0; t < idx.length; t++) n += idx[t].length + starts[t].length + val[t].length + st[t].length;
            return 4L * n;
        }

        @Override
        public void run(int r0, int r1, int thread) {
            SparsePrompt.rows(w, xt, n, tokenRows, y, yOff, bias, r0, r1, idx[thread], val[thread], starts[thread], st[thread]);
        }
    }

    /**
     * Bytes of the scratch that grows with the products run: x split into halves, the prompt rows transposed, the
     * other rows gathered, the prompt kernel's kept-value lists.
     */
    public long scratchBytes() {
        long rows = 0;
        for (float[] p : planes) rows += p.length;
        return 4L * (xEven.length + xOdd.length + gx.length + gy.length + otherRows.length + rows) + xt.byteSize()
                + promptTask.bytes();
    }

    private final Rows rowsTask = new Rows();

    /** The output rows [r0, r1) of one product; refilled per call so that a step allocates nothing. */
    private final class Rows implements CpuPool.RangeTask {
        WeightMatrix w;
        float[] x, xOdd, y, bias;
        int xOff, tokens, yOff;
        boolean bf16;

        /**
         * bf16: dense or sparse BF16 through Bf16Gemv.rowsBatched, x and xOdd the even and odd halves of every token
         * row; else the general panel path.
         */
        Rows set(WeightMatrix w, float[] x, float[] xOdd, int xOff, int tokens, float[] y, int yOff, float[] bias,
                 boolean bf16) {
            this.w = w;
            this.x = x;
            this.xOdd = xOdd;
            this.xOff = xOff;
            this.tokens = tokens;
            this.y = y;
            this.yOff = yOff;
            this.bias = bias;
            this.bf16 = bf16;
            return this;
        }

        @Override
        public void run(int r0, int r1, int thread) {
            if (bf16) {
                Bf16Gemv.rowsBatched(w, x, xOdd, tokens, y, yOff, bias, r0, r1, planes[thread], tileSums[thread]);
            } else {
                rowsRange(w, x, xOff, tokens, y, yOff, bias, r0, r1, scratch[thread], tileSums[thread]);
            }
        }
    }

    /**
     * y_i = x W_i^T + bias_i for the first {@code count} matrices, all of the same width, reading the same x (T rows
     * at offset 0) and writing y_i at offset 0. One token over BF16 matrices of one format runs as a single parallel
     * pass ({@link DecodePass}); anything else as one product after another.
     */
    public void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases) {
        if (count > DecodePass.MAX_MATRICES) throw new IllegalArgumentException("at most "
                + DecodePass.MAX_MATRICES + " matrices in one pass, got " + count);
        boolean fused = tokens == 1;
        for (int m = 0; m < count; m++) {
            if (ws[m].cols() != ws[0].cols()) throw new IllegalArgumentException("matrices of one pass differ in width");
            fused &= DecodePass.applies(ws[m], tokens) && ws[m].getClass() == ws[0].getClass();
        }
        if (!fused) {
            for (int m = 0; m < count; m++) matmul(ws[m], x, 0, tokens, ys[m], 0, biases[m]);
            return;
        }
        decode(ws, ys, null, biases, count, x, 0);
    }

    /** One token through {@link DecodePass}, which reads x split into halves. */
    private void decode(WeightMatrix[] ws, float[][] ys, int[] yOffs, float[][] biases, int count, float[] x, int xOff) {
        int cols = ws[0].cols();
        ensureHalves(cols / 2);
        Bf16Gemv.split(x, xOff, cols, xEven, xOdd);
        pool.parallelFor(decode.threads(), decode.prepare(ws, ys, yOffs, biases, count, xEven, xOdd));
    }

    /** Grows the per-thread scratch of batched BF16 and sparse products (two rows, widened) to {@code cols} columns. */
    private void ensurePlanes(int cols) {
        if (planes[0].length >= 2 * cols) return;
        for (int t = 0; t < planes.length; t++) planes[t] = new float[2 * cols];
    }

    /**
     * Rows per claimed range of a batched product ({@link CpuPool#parallelForClaimed}): about perThread ranges per
     * thread (prefill +2-4%, dense and sparse alike, against one fixed range per thread; measured in one JVM, medians
     * of 21 alternating rounds), a multiple of the panel so that panels fall where they would in one range.
     */
    private int chunk(int rows, int panel, int perThread) {
        int target = Math.max(1, rows / (pool.threads() * perThread));
        return Math.max(panel, (target + panel - 1) / panel * panel);
    }

    /** Grows the even/odd halves of x (Bf16Gemv.split) to hold n floats each. */
    private void ensureHalves(int n) {
        if (xEven.length < n) {
            xEven = new float[n];
            xOdd = new float[n];
        }
    }

    private static void rowsRange(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias,
                                  int r0, int r1, float[] panel, float[] sums) {
        int rows = w.rows(), cols = w.cols();
        for (int k0 = 0; k0 < cols; k0 += K_BLOCK) {
            int len = Math.min(K_BLOCK, cols - k0);
            boolean first = k0 == 0;
            for (int r = r0; r < r1; r += PANEL) {
                int nr = Math.min(PANEL, r1 - r);
                w.decode(r, nr, k0, len, panel, 0);
                if (first) {
                    for (int t = 0; t < tokens; t++) {
                        int yo = yOff + t * rows + r;
                        for (int i = 0; i < nr; i++) y[yo + i] = bias == null ? 0f : bias[r + i];
                    }
                }
                int xo = xOff + k0;
                int yo = yOff + r;
                if (nr == PANEL) {
                    int t = 0;
                    for (; t + TILE_T <= tokens; t += TILE_T) tile4x4(panel, len, x, xo + t * cols, cols, y, yo + t * rows, rows, sums);
                    for (; t < tokens; t++) tile4x1(panel, len, x, xo + t * cols, y, yo + t * rows, sums);
                } else {
                    for (int t = 0; t < tokens; t++) {
                        for (int i = 0; i < nr; i++) y[yo + t * rows + i] += tileRow(panel, i, len, x, xo + t * cols);
                    }
                }
            }
        }
    }

    /** Four rows of the panel times four token rows of x; adds the 16 dot products into y. */
    private static void tile4x4(float[] p, int len, float[] x, int xo, int xs, float[] y, int yo, int ys, float[] buf) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int bound = F.loopBound(len);
        int k = 0;
        for (; k < bound; k += F.length()) {
            FloatVector x0 = FloatVector.fromArray(F, x, xo + k);
            FloatVector x1 = FloatVector.fromArray(F, x, xo + xs + k);
            FloatVector x2 = FloatVector.fromArray(F, x, xo + 2 * xs + k);
            FloatVector x3 = FloatVector.fromArray(F, x, xo + 3 * xs + k);
            FloatVector w = FloatVector.fromArray(F, p, k);
            a00 = w.fma(x0, a00); a01 = w.fma(x1, a01); a02 = w.fma(x2, a02); a03 = w.fma(x3, a03);
            w = FloatVector.fromArray(F, p, len + k);
            a10 = w.fma(x0, a10); a11 = w.fma(x1, a11); a12 = w.fma(x2, a12); a13 = w.fma(x3, a13);
            w = FloatVector.fromArray(F, p, 2 * len + k);
            a20 = w.fma(x0, a20); a21 = w.fma(x1, a21); a22 = w.fma(x2, a22); a23 = w.fma(x3, a23);
            w = FloatVector.fromArray(F, p, 3 * len + k);
            a30 = w.fma(x0, a30); a31 = w.fma(x1, a31); a32 = w.fma(x2, a32); a33 = w.fma(x3, a33);
        }
        // The 16 sums through buf in scalar code, in the fixed order of Lanes (the arithmetic of tile4x1 and tileRow):
        // C2 has spent its node budget on this method by here (NodeCountInliningCutoff), so the third and fourth
        // Lanes.sum4 were called out of line with their vectors boxed, and every product of two or more tokens over
        // a sparse or non-BF16 matrix ran the Vector API's allocating fallback (measured on a Zen 5 EPYC: 2:4 at
        // batch 16 0.27x dense, prefill 0.22x; see Bf16Gemv.tile2x4 for the same fix).
        int n = Lanes.N;
        a00.intoArray(buf, 0);
        a10.intoArray(buf, n);
        a20.intoArray(buf, 2 * n);
        a30.intoArray(buf, 3 * n);
        a01.intoArray(buf, 4 * n);
        a11.intoArray(buf, 5 * n);
        a21.intoArray(buf, 6 * n);
        a31.intoArray(buf, 7 * n);
        a02.intoArray(buf, 8 * n);
        a12.intoArray(buf, 9 * n);
        a22.intoArray(buf, 10 * n);
        a32.intoArray(buf, 11 * n);
        a03.intoArray(buf, 12 * n);
        a13.intoArray(buf, 13 * n);
        a23.intoArray(buf, 14 * n);
        a33.intoArray(buf, 15 * n);
        Lanes.sums(buf, 16);
        for (int t = 0; t < 4; t++) {
            for (int i = 0; i < 4; i++) y[yo + t * ys + i] += buf[4 * t + i] + tail(p, k, len, x, xo + t * xs, i);
        }
    }

    /** Four rows of the panel times one token row of x (decode). */
    private static void tile4x1(float[] p, int len, float[] x, int xo, float[] y, int yo, float[] buf) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int bound = F.loopBound(len);
        int k = 0;
        for (; k < bound; k += F.length()) {
            FloatVector xv = FloatVector.fromArray(F, x, xo + k);
            a0 = FloatVector.fromArray(F, p, k).fma(xv, a0);
            a1 = FloatVector.fromArray(F, p, len + k).fma(xv, a1);
            a2 = FloatVector.fromArray(F, p, 2 * len + k).fma(xv, a2);
            a3 = FloatVector.fromArray(F, p, 3 * len + k).fma(xv, a3);
        }
        // Through buf in scalar code, as tile4x4: with several matrix classes behind rowsRange's decode call, C2 ran
        // out of nodes here too (an F16 model's decode step allocated 2 MB after sparse models had run).
        int n = Lanes.N;
        a0.intoArray(buf, 0);
        a1.intoArray(buf, n);
        a2.intoArray(buf, 2 * n);
        a3.intoArray(buf, 3 * n);
        Lanes.sums(buf, 4);
        for (int i = 0; i < 4; i++) y[yo + i] += buf[i] + tail(p, k, len, x, xo, i);
    }

    /** One row of the panel times one token row: the arithmetic of one row of {@link #tile4x1}. */
    private static float tileRow(float[] p, int row, int len, float[] x, int xo) {
        FloatVector a = FloatVector.zero(F);
        int bound = F.loopBound(len);
        int k = 0;
        for (; k < bound; k += F.length()) a = FloatVector.fromArray(F, p, row * len + k).fma(FloatVector.fromArray(F, x, xo + k), a);
        return Lanes.sum(a) + tail(p, k, len, x, xo, row);
    }

    /** The columns past the last full vector, scalar. */
    private static float tail(float[] p, int k, int len, float[] x, int xo, int row) {
        float s = 0f;
        for (int j = k; j < len; j++) s += p[row * len + j] * x[xo + j];
        return s;
    }

    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        FloatVector acc = FloatVector.zero(F);
        int bound = F.loopBound(n);
        int k = 0;
        for (; k < bound; k += F.length()) {
            acc = FloatVector.fromArray(F, a, ao + k).fma(FloatVector.fromArray(F, b, bo + k), acc);
        }
        float s = Lanes.sum(acc);
        for (; k < n; k++) s += a[ao + k] * b[bo + k];
        return s;
    }
}
