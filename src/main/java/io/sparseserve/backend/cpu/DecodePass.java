package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.util.concurrent.atomic.AtomicLongArray;

/**
 * y_m[r] = W_m[r, :] . x + bias_m[r] for one token and one or more matrices that read the same x (a layer's q, k and
 * v, or gate and up), as one parallel pass: the decode hot path, for dense BF16 weights ({@link Bf16Gemv}) or
 * compressed sparse BF16 weights ({@link SparseGemv}).
 *
 * <p>Each thread owns a contiguous range of rows of every matrix, cut into four equal parts, and a panel takes one
 * row from each part: four long sequential streams, which the hardware prefetchers follow far ahead (four
 * neighbouring rows look like one short stream per row and left decode at half the memory's speed). A thread takes
 * panels from the front of its own ranges and, once those are done, steals from the back of the others': a thread
 * that the machine slowed down or started late does not hold up the step, and the matrices of one pass share a
 * single start and a single barrier. Refilled per call: a step allocates nothing; one pass at a time.
 */
final class DecodePass implements CpuPool.RangeTask {
    static final int MAX_MATRICES = 4;
    private static final int ROWS = 4;
    private static final int PAD = 16; // longs between two threads' claims: a cache line each, and then some
    private final int threads;
    private final AtomicLongArray claims;
    private final WeightMatrix[] w = new WeightMatrix[MAX_MATRICES];
    private final float[][] y = new float[MAX_MATRICES][];
    private final float[][] bias = new float[MAX_MATRICES][];
    private final int[] yOff = new int[MAX_MATRICES];
    private final int[][] start;   // [matrix][thread]: first row of the thread's range; [threads] = rows
    private final int[][] quarter; // [matrix][thread]: panels in the range (a quarter of its rows)
    private final float[][] sums;  // [thread]: SparseGemv.pair's accumulators, summed in scalar code
    private int count;
    private boolean sparse;
    private float[] xe, xo;

    DecodePass(int threads) {
        this.threads = threads;
        this.claims = new AtomicLongArray(threads * PAD);
        this.start = new int[MAX_MATRICES][threads + 1];
        this.quarter = new int[MAX_MATRICES][threads];
        this.sums = new float[threads][4 * Lanes.N];
    }

    int threads() {
        return threads;
    }

    /** Dense BF16 of an even width, or compressed sparse BF16 ({@link SparseGemv#applies}); one token. */
    static boolean applies(WeightMatrix w, int tokens) {
        return Bf16Gemv.applies(w, tokens) || tokens == 1 && SparseGemv.applies(w);
    }

    /**
     * Sets up the products of ws[0..count) with x, all dense or all sparse; then {@code pool.parallelFor(threads(),
     * this)}. xe and xo: x split into even and odd elements ({@link Bf16Gemv#split}).
     */
    DecodePass prepare(WeightMatrix[] ws, float[][] ys, int[] yOffs, float[][] biases, int count, float[] xe, float[] xo) {
        this.count = count;
        this.sparse = ws[0] instanceof MaskedMatrix;
        this.xe = xe;
        this.xo = xo;
        for (int t = 0; t < threads; t++) claims.set(t * PAD, 0);
        for (int m = 0; m < count; m++) {
            if (ws[m] instanceof MaskedMatrix != sparse) throw new IllegalArgumentException("one pass mixes dense and sparse");
            w[m] = ws[m];
            y[m] = ys[m];
            yOff[m] = yOffs == null ? 0 : yOffs[m];
            bias[m] = biases[m];
            int rows = ws[m].rows();
            for (int t = 0; t < threads; t++) start[m][t] = (int) ((long) rows * t / threads) & ~(ROWS - 1);
            start[m][threads] = rows;
            for (int t = 0; t < threads; t++) {
                quarter[m][t] = (start[m][t + 1] - start[m][t]) / ROWS;
                claims.set(t * PAD, claims.get(t * PAD) + quarter[m][t]); // front 0, back = the thread's panels
            }
        }
        return this;
    }

    /** Thread {@code thread} runs its own ranges, then helps the others; [t0, t1) has every thread run inline. */
    @Override
    public void run(int t0, int t1, int thread) {
        for (int t = t0; t < t1; t++) {
            // The rows past the last full panel, by their owner.
            for (int m = 0; m < count; m++) {
                for (int r = start[m][t] + ROWS * quarter[m][t]; r < start[m][t + 1]; r++) row(m, r);
            }
            int i;
            while ((i = claimFront(t)) >= 0) panel(t, i, thread);
        }
        for (int k = 1; k < threads; k++) {
            int u = (t0 + k) % threads;
            int i;
            while ((i = claimBack(u)) >= 0) panel(u, i, thread);
        }
    }

    private void row(int m, int r) {
        if (sparse) {
            SparseGemv.row((MaskedMatrix) w[m], xe, xo, y[m], yOff[m], bias[m], r);
        } else {
            DenseMatrix d = (DenseMatrix) w[m];
            float v = Bf16Gemv.row(d.data(), d.cols(), xe, xo, r);
            y[m][yOff[m] + r] = bias[m] == null ? v : v + bias[m][r];
        }
    }

    /** Panel i of thread t's ranges, counted over its matrices in order. */
    private void panel(int t, int i, int thread) {
        int m = 0;
        while (i >= quarter[m][t]) {
            i -= quarter[m][t];
            m++;
        }
        int r = start[m][t] + i, q = quarter[m][t];
        if (sparse) {
            MaskedMatrix s = (MaskedMatrix) w[m];
            SparseGemv.pair(s, xe, xo, y[m], yOff[m], bias[m], r, q, sums[thread]);
            SparseGemv.pair(s, xe, xo, y[m], yOff[m], bias[m], r + 2 * q, q, sums[thread]);
        } else {
            DenseMatrix d = (DenseMatrix) w[m];
            Bf16Gemv.panel(d.data(), d.cols(), xe, xo, y[m], yOff[m], bias[m], r, q);
        }
    }

    /** The next panel from the front of thread t's ranges, or -1; the claim packs (front << 32) | back. */
    private int claimFront(int t) {
        while (true) {
            long c = claims.get(t * PAD);
            int front = (int) (c >>> 32), back = (int) c;
            if (front >= back) return -1;
            if (claims.compareAndSet(t * PAD, c, c + (1L << 32))) return front;
        }
    }

    private int claimBack(int t) {
        while (true) {
            long c = claims.get(t * PAD);
            int front = (int) (c >>> 32), back = (int) c;
            if (front >= back) return -1;
            if (claims.compareAndSet(t * PAD, c, c - 1)) return back - 1;
        }
    }
}
