package io.sparseserve.prune;

import io.sparseserve.backend.Backend;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import java.lang.foreign.MemorySegment;

/**
 * H = (2 / n) · Σ x xᵀ over the inputs x (rows of activations) a linear layer sees during calibration, n counting
 * calibration sequences, kept as a running mean in float64 exactly as the SparseGPT reference's {@code add_batch} does
 * ({@code H *= n / (n + b); n += b; H += (2 / n) · X Xᵀ} for each batch of b sequences). Its diagonal is also Wanda's
 * squared input norms (times 2 / n, which does not change Wanda's ranking).
 *
 * <p>Each batch's X Xᵀ runs in float32 through the backend's matrix kernel (Xᵀ as both the "weights" and the
 * "tokens"), its upper triangle only, in bands of rows; then it is folded into the float64 mean.
 */
public final class Hessian {
    private final int cols;
    private final double[] h;
    private long samples;

    public Hessian(int cols) {
        this.cols = cols;
        this.h = new double[Math.multiplyExact(cols, cols)];
    }

    public int cols() {
        return cols;
    }

    /** Back to no samples (H = 0), to accumulate another layer's inputs in the same memory. */
    public void reset() {
        java.util.Arrays.fill(h, 0.0);
        samples = 0;
    }

    /** Calibration sequences seen so far. */
    public long samples() {
        return samples;
    }

    /** The matrix, row-major [cols, cols]; not a copy. */
    public double[] values() {
        return h;
    }

    /** Reusable buffers for {@link #add}: the transposed input and one band of the float32 product. */
    public static final class Scratch {
        float[] xt = new float[0];
        float[] gram = new float[0];
    }

    /** Rows of X Xᵀ computed per matrix product: H is symmetric, so each band starts at its diagonal. */
    static final int BAND = 256;

    /**
     * Folds in {@code tokens} rows of {@code x} (each {@code cols} wide), which belong to {@code sequences}
     * calibration sequences.
     */
    public void add(Backend ops, float[] x, int tokens, int sequences, Scratch s) {
        int need = Math.multiplyExact(cols, tokens);
        if (s.xt.length < need) s.xt = new float[need];
        int bandFloats = Math.min(BAND, cols) * cols;
        if (s.gram.length < bandFloats) s.gram = new float[bandFloats];
        float[] xt = s.xt;
        for (int t = 0; t < tokens; t++) {
            int row = t * cols;
            for (int c = 0; c < cols; c++) xt[c * tokens + t] = x[row + c];
        }
        double keep = (double) samples / (samples + sequences);
        samples += sequences;
        double scale = 2.0 / samples;
        MemorySegment all = MemorySegment.ofArray(xt);
        float[] g = s.gram;
        // Band [i0, i0 + bs) x [i0, cols): columns i0.. of Xᵀ as the "weights", rows i0..i0+bs as the "tokens".
        for (int i0 = 0; i0 < cols; i0 += BAND) {
            int bs = Math.min(BAND, cols - i0), rest = cols - i0;
            DenseMatrix right = new DenseMatrix(all.asSlice(4L * i0 * tokens, 4L * rest * tokens), DType.F32, rest, tokens);
            ops.matmul(right, xt, i0 * tokens, bs, g, 0, null);
            for (int t = 0; t < bs; t++) {
                int i = i0 + t;
                for (int r = t; r < rest; r++) {
                    int j = i0 + r;
                    double v = h[i * cols + j] * keep + scale * g[t * rest + r];
                    h[i * cols + j] = v;
                    h[j * cols + i] = v;
                }
            }
        }
    }

    /** Adds the exact float64 X Xᵀ of a [tokens, cols] input (tests: a reference for {@link #add}). */
    public void addExact(float[] x, int tokens, int sequences) {
        double keep = (double) samples / (samples + sequences);
        samples += sequences;
        double scale = 2.0 / samples;
        for (int i = 0; i < h.length; i++) h[i] *= keep;
        for (int t = 0; t < tokens; t++) {
            for (int i = 0; i < cols; i++) {
                double xi = x[t * cols + i] * scale;
                for (int j = 0; j < cols; j++) h[i * cols + j] += xi * x[t * cols + j];
            }
        }
    }
}
