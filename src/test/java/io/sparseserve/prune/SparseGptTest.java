package io.sparseserve.prune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.cpu.CpuBackend;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * SparseGPT on single layers with correlated random inputs: the blocked, lazy-batch implementation against a plain
 * column-by-column one of the same equations, its reconstruction error against magnitude pruning's, and the exact
 * sparsity patterns it produces.
 */
class SparseGptTest {
    static final int ROWS = 24, COLS = 96, TOKENS = 400, BLOCK = 32;

    /** Inputs X [tokens, cols] = Z · A with a random mixing A: strongly correlated columns, as in real layers. */
    static float[] correlatedInputs(int tokens, int cols, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        double[] a = new double[cols * cols];
        for (int i = 0; i < a.length; i++) a[i] = rnd.nextGaussian() / Math.sqrt(cols);
        for (int i = 0; i < cols; i++) a[i * cols + i] += 1;
        float[] x = new float[tokens * cols];
        double[] z = new double[cols];
        for (int t = 0; t < tokens; t++) {
            for (int k = 0; k < cols; k++) z[k] = rnd.nextGaussian() * (1 + k % 5);
            for (int j = 0; j < cols; j++) {
                double s = 0;
                for (int k = 0; k < cols; k++) s += z[k] * a[k * cols + j];
                x[t * cols + j] = (float) s;
            }
        }
        return x;
    }

    static float[] randomWeights(int rows, int cols, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        return w;
    }

    static Hessian hessian(float[] x, int tokens, int cols) {
        Hessian h = new Hessian(cols);
        // Two "batches" of sequences, to exercise the running mean.
        int half = tokens / 2;
        h.addExact(java.util.Arrays.copyOfRange(x, 0, half * cols), half, 3);
        h.addExact(java.util.Arrays.copyOfRange(x, half * cols, tokens * cols), tokens - half, 5);
        return h;
    }

    /** ‖(W − Ŵ) X‖²_F computed directly. */
    static double reconstructionError(float[] w, float[] pruned, float[] x, int rows, int cols, int tokens) {
        double err = 0;
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double s = 0;
                for (int c = 0; c < cols; c++) s += (double) (w[r * cols + c] - pruned[r * cols + c]) * x[t * cols + c];
                err += s * s;
            }
        }
        return err;
    }

    /**
     * The same equations without blocks or lazy updates: H⁻¹ by Gauss-Jordan elimination and its Cholesky factor
     * computed the textbook way, every column's error applied to all later columns at once; the mask chosen at the
     * same points (each block start for unstructured, each M-th column for N:M).
     */
    static double[] columnByColumn(float[] w0, int rows, int cols, double[] h0, double percdamp, SparsityPattern p,
                                   int blocksize) {
        double[] h = h0.clone();
        boolean[] dead = new boolean[cols];
        double mean = 0;
        for (int i = 0; i < cols; i++) {
            if (h[i * cols + i] == 0) {
                dead[i] = true;
                h[i * cols + i] = 1;
            }
            mean += h[i * cols + i];
        }
        double damp = percdamp * mean / cols;
        for (int i = 0; i < cols; i++) h[i * cols + i] += damp;
        double[] hinv = invert(h, cols);
        double[] u = upperCholesky(hinv, cols);
        double[] w = new double[w0.length];
        for (int i = 0; i < w.length; i++) w[i] = dead[i % cols] ? 0 : w0[i];
        boolean[] mask = new boolean[rows * cols];
        for (int i = 0; i < cols; i++) {
            if (p instanceof SparsityPattern.Unstructured us && i % blocksize == 0 && us.sparsity() > 0) {
                int count = Math.min(blocksize, cols - i);
                double[] score = new double[rows * count];
                for (int r = 0; r < rows; r++) {
                    for (int j = 0; j < count; j++) {
                        double d = u[(i + j) * cols + i + j];
                        score[r * count + j] = w[r * cols + i + j] * w[r * cols + i + j] / (d * d);
                    }
                }
                double[] sorted = score.clone();
                java.util.Arrays.sort(sorted);
                double thresh = sorted[(int) (score.length * us.sparsity())];
                for (int r = 0; r < rows; r++) {
                    for (int j = 0; j < count; j++) mask[r * cols + i + j] = score[r * count + j] <= thresh;
                }
            }
            if (p instanceof SparsityPattern.NM nm && i % nm.m() == 0) {
                for (int r = 0; r < rows; r++) {
                    double[] score = new double[nm.m()];
                    for (int k = 0; k < nm.m(); k++) {
                        double d = u[(i + k) * cols + i + k];
                        score[k] = w[r * cols + i + k] * w[r * cols + i + k] / (d * d);
                    }
                    for (int drop = 0; drop < nm.m() - nm.n(); drop++) {
                        int best = -1;
                        for (int k = 0; k < nm.m(); k++) {
                            if (!mask[r * cols + i + k] && (best < 0 || score[k] < score[best])) best = k;
                        }
                        mask[r * cols + i + best] = true;
                    }
                }
            }
            for (int r = 0; r < rows; r++) {
                double wi = w[r * cols + i];
                double q = mask[r * cols + i] ? 0 : wi;
                double err = (wi - q) / u[i * cols + i];
                for (int j = i + 1; j < cols; j++) w[r * cols + j] -= err * u[i * cols + j];
                w[r * cols + i] = q;
            }
        }
        return w;
    }

    static double[] invert(double[] a0, int n) {
        double[] a = a0.clone();
        double[] inv = new double[n * n];
        for (int i = 0; i < n; i++) inv[i * n + i] = 1;
        for (int c = 0; c < n; c++) {
            int piv = c;
            for (int r = c + 1; r < n; r++) if (Math.abs(a[r * n + c]) > Math.abs(a[piv * n + c])) piv = r;
            for (int k = 0; k < n; k++) {
                double t = a[c * n + k]; a[c * n + k] = a[piv * n + k]; a[piv * n + k] = t;
                t = inv[c * n + k]; inv[c * n + k] = inv[piv * n + k]; inv[piv * n + k] = t;
            }
            double d = a[c * n + c];
            for (int k = 0; k < n; k++) {
                a[c * n + k] /= d;
                inv[c * n + k] /= d;
            }
            for (int r = 0; r < n; r++) {
                if (r == c) continue;
                double f = a[r * n + c];
                for (int k = 0; k < n; k++) {
                    a[r * n + k] -= f * a[c * n + k];
                    inv[r * n + k] -= f * inv[c * n + k];
                }
            }
        }
        return inv;
    }

    /** U upper with Uᵀ U = a: the transpose of the lower Cholesky factor. */
    static double[] upperCholesky(double[] a, int n) {
        double[] l = new double[n * n];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j <= i; j++) {
                double s = a[i * n + j];
                for (int k = 0; k < j; k++) s -= l[i * n + k] * l[j * n + k];
                l[i * n + j] = i == j ? Math.sqrt(s) : s / l[j * n + j];
            }
        }
        double[] u = new double[n * n];
        for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) u[i * n + j] = l[j * n + i];
        return u;
    }

    private static void assertMatchesColumnByColumn(SparsityPattern p, boolean withDeadColumn) {
        float[] x = correlatedInputs(TOKENS, COLS, 11);
        if (withDeadColumn) for (int t = 0; t < TOKENS; t++) x[t * COLS + 7] = 0;
        float[] w = randomWeights(ROWS, COLS, 12);
        Hessian h = hessian(x, TOKENS, COLS);
        double[] expected = columnByColumn(w, ROWS, COLS, h.values(), 0.01, p, BLOCK);
        float[] got = w.clone();
        HessianInverse.Factor f = HessianInverse.of(h.values(), COLS, 0.01, "test");
        SparseGpt.prune(got, ROWS, COLS, f, p, BLOCK);
        double scale = 0;
        for (double v : expected) scale = Math.max(scale, Math.abs(v));
        for (int i = 0; i < got.length; i++) {
            assertEquals(expected[i] == 0, got[i] == 0, "mask differs at row " + i / COLS + ", column " + i % COLS);
            assertEquals(expected[i], got[i], 1e-5 * scale, "weight at row " + i / COLS + ", column " + i % COLS);
        }
        if (withDeadColumn) for (int r = 0; r < ROWS; r++) assertEquals(0f, got[r * COLS + 7]);
    }

    @Test
    void blockedLazyBatchEqualsColumnByColumnUnstructured() {
        assertMatchesColumnByColumn(new SparsityPattern.Unstructured(0.5), false);
        assertMatchesColumnByColumn(new SparsityPattern.Unstructured(0.7), true);
    }

    @Test
    void blockedLazyBatchEqualsColumnByColumnNM() {
        assertMatchesColumnByColumn(new SparsityPattern.NM(2, 4), false);
        assertMatchesColumnByColumn(new SparsityPattern.NM(4, 8), true);
    }

    @Test
    void factorIsTheUpperCholeskyFactorOfTheDampenedInverse() {
        int n = 40;
        float[] x = correlatedInputs(200, n, 5);
        Hessian h = hessian(x, 200, n);
        HessianInverse.Factor f = HessianInverse.of(h.values(), n, 0.01, "test");
        double[] u = f.u();
        double[] damped = h.values().clone();
        for (int i = 0; i < n; i++) damped[i * n + i] += f.damp();
        // (Uᵀ U) (H + λI) = I, U upper with a positive diagonal.
        for (int i = 0; i < n; i++) {
            assertTrue(u[i * n + i] > 0);
            for (int j = 0; j < i; j++) assertEquals(0.0, u[i * n + j]);
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) {
                    double hinvIk = 0;
                    for (int m = 0; m < n; m++) hinvIk += u[m * n + i] * u[m * n + k];
                    s += hinvIk * damped[k * n + j];
                }
                assertEquals(i == j ? 1.0 : 0.0, s, 1e-8, "(H^-1 H)[" + i + "][" + j + "]");
            }
        }
    }

    @Test
    void failedFactorizationRetriesWithMoreDampening() {
        // Indefinite: no dampening below 1 makes diag(1, -1, 1) positive definite. mean(diag) = 1/3, so λ goes
        // 0.01/3 -> 0.1/3 -> 1/3 -> 10/3, which works: three retries.
        double[] h = {1, 0, 0, 0, -1, 0, 0, 0, 1};
        HessianInverse.Factor f = HessianInverse.of(h, 3, 0.01, "test");
        assertEquals(3, f.retries());
        assertEquals(10.0 / 3, f.damp(), 1e-12);
        assertEquals(1 / Math.sqrt(1 + 10.0 / 3), f.diag(0), 1e-12);
    }

    @ParameterizedTest
    @ValueSource(strings = {"0.5", "2:4", "0.7", "4:8"})
    void reconstructionErrorIsBelowMagnitudes(String spec) {
        SparsityPattern p = spec.contains(":") ? SparsityPattern.parsePattern(spec)
                : new SparsityPattern.Unstructured(Double.parseDouble(spec));
        float[] x = correlatedInputs(TOKENS, COLS, 21);
        float[] w = randomWeights(ROWS, COLS, 22);
        Hessian h = hessian(x, TOKENS, COLS);
        float[] sgpt = w.clone();
        SparseGpt.prune(sgpt, ROWS, COLS, HessianInverse.of(h.values(), COLS, 0.01, "test"), p, BLOCK);
        float[] mag = w.clone();
        Magnitude.prune(mag, ROWS, COLS, p);
        float[] wanda = w.clone();
        double[] diag = new double[COLS];
        for (int i = 0; i < COLS; i++) diag[i] = h.values()[i * COLS + i];
        Wanda.prune(wanda, ROWS, COLS, diag, p);
        double eS = reconstructionError(w, sgpt, x, ROWS, COLS, TOKENS);
        double eM = reconstructionError(w, mag, x, ROWS, COLS, TOKENS);
        double eW = reconstructionError(w, wanda, x, ROWS, COLS, TOKENS);
        assertTrue(eS < eM, "sparsegpt " + eS + " vs magnitude " + eM);
        assertTrue(eS < eW, "sparsegpt " + eS + " vs wanda " + eW);
    }

    @Test
    void unstructuredPrunesTheThresholdCountOfEveryBlock() {
        float[] x = correlatedInputs(TOKENS, COLS, 31);
        float[] w = randomWeights(ROWS, COLS, 32);
        float[] got = w.clone();
        Hessian h = hessian(x, TOKENS, COLS);
        SparseGpt.prune(got, ROWS, COLS, HessianInverse.of(h.values(), COLS, 0.01, "test"), new SparsityPattern.Unstructured(0.5), BLOCK);
        // The reference prunes the scores <= the one at index floor(numel * S): floor(numel * S) + 1 per block.
        for (int b = 0; b < COLS; b += BLOCK) {
            int zeros = 0;
            for (int r = 0; r < ROWS; r++) for (int c = b; c < b + BLOCK; c++) if (got[r * COLS + c] == 0) zeros++;
            assertEquals(ROWS * BLOCK / 2 + 1, zeros, "zeros in block at column " + b);
        }
        float[] none = w.clone();
        SparseGpt.prune(none, ROWS, COLS, HessianInverse.of(h.values(), COLS, 0.01, "test"), new SparsityPattern.Unstructured(0), BLOCK);
        for (int i = 0; i < w.length; i++) assertEquals(w[i], none[i], 1e-5, "S = 0 changes nothing");
    }

    @Test
    void nmKeepsExactlyNOfEveryM() {
        float[] x = correlatedInputs(TOKENS, COLS, 41);
        float[] w = randomWeights(ROWS, COLS, 42);
        Hessian h = hessian(x, TOKENS, COLS);
        for (SparsityPattern.NM nm : new SparsityPattern.NM[] {new SparsityPattern.NM(2, 4), new SparsityPattern.NM(4, 8)}) {
            float[] got = w.clone();
            SparseGpt.prune(got, ROWS, COLS, HessianInverse.of(h.values(), COLS, 0.01, "test"), nm, BLOCK);
            for (int g = 0; g < got.length; g += nm.m()) {
                int kept = 0;
                for (int k = 0; k < nm.m(); k++) if (got[g + k] != 0) kept++;
                assertEquals(nm.n(), kept, nm + " group at row " + g / COLS + ", column " + g % COLS);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {70, 300}) // one band of rows, and several (Hessian.BAND = 256)
    void hessianThroughTheMatrixKernelEqualsTheExactOne(int cols) {
        int tokens = 130;
        float[] x = correlatedInputs(tokens, cols, 51);
        Hessian exact = new Hessian(cols), fast = new Hessian(cols);
        exact.addExact(java.util.Arrays.copyOfRange(x, 0, 60 * cols), 60, 2);
        exact.addExact(java.util.Arrays.copyOfRange(x, 60 * cols, tokens * cols), tokens - 60, 3);
        Hessian.Scratch s = new Hessian.Scratch();
        CpuBackend cpu = new CpuBackend(16);
        fast.add(cpu, java.util.Arrays.copyOfRange(x, 0, 60 * cols), 60, 2, s);
        fast.add(cpu, java.util.Arrays.copyOfRange(x, 60 * cols, tokens * cols), tokens - 60, 3, s);
        assertEquals(5, fast.samples());
        double max = 0;
        for (double v : exact.values()) max = Math.max(max, Math.abs(v));
        for (int i = 0; i < exact.values().length; i++) assertEquals(exact.values()[i], fast.values()[i], 1e-5 * max);
    }
}
