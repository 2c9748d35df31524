package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.TestMatrices;
import io.sparseserve.tensor.WeightMatrix;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The prompt kernel over sparse weights ({@link SparsePrompt}, through {@link CpuMatmul} with prompt rows): every
 * prompt row bit for bit the scalar reference of its arithmetic, and close to the exact product; every other row bit
 * for bit what the product gives without prompt rows (the decode arithmetic); on random shapes with ragged tails
 * (columns not a multiple of 8 or 16, rows not a multiple of a panel, tokens across blocks), every weight dtype, both
 * sparse formats, one and two threads.
 */
class SparsePromptTest {

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void promptRowsEqualTheReferenceAndOtherRowsTheDecodeArithmetic(DType dtype) {
        SplittableRandom rnd = new SplittableRandom(dtype.ordinal());
        // {rows, cols, tokens}: ragged columns and rows; tokens 1, within one vector, within one block, past a block.
        // 17 to 32 prompt rows run two output rows side by side: odd rows and rows past a panel leave one alone.
        int[][] shapes = {{1, 8, 1}, {5, 13, 3}, {37, 70, 17}, {64, 256, 5}, {33, 1100, 70}, {130, 300, 140}, {21, 2100, 2},
                {67, 200, 32}, {3, 40, 64}};
        for (int[] s : shapes) {
            int rows = s[0], cols = s[1], tokens = s[2];
            for (String format : new String[] {"bitmask", "2:4"}) {
                if (format.equals("2:4") && cols % 4 != 0) continue;
                for (double sparsity : new double[] {0.5, 0.7, 0.95}) {
                    if (format.equals("2:4") && sparsity != 0.5) continue;
                    float[] dense = weights(rnd, rows, cols, sparsity, format);
                    MaskedMatrix w = format.equals("2:4") ? NmMatrix.fromDense(dense, rows, cols, 2, 4, dtype)
                            : BitmaskMatrix.fromDense(dense, rows, cols, dtype);
                    String what = dtype + " " + format + " " + sparsity + " " + rows + "x" + cols + " T=" + tokens;
                    check(w, dense, rows, cols, tokens, rnd, what);
                }
            }
        }
    }

    @Test
    void aPromptRowDoesNotDependOnTheOtherRowsOrTheThreads() {
        // The same token as the only prompt row, among other prompt rows, and on one or two threads: the same bits.
        int rows = 77, cols = 200;
        SplittableRandom rnd = new SplittableRandom(3);
        float[] dense = weights(rnd, rows, cols, 0.6, "bitmask");
        MaskedMatrix w = BitmaskMatrix.fromDense(dense, rows, cols, DType.BF16);
        float[] x = TestMatrices.randomVector(150 * cols, 4), bias = TestMatrices.randomVector(rows, 5);
        float[] many = new float[150 * rows], one = new float[rows];
        int[] all = java.util.stream.IntStream.range(0, 150).toArray();
        new CpuMatmul(new CpuPool(2)).matmul(w, x, 0, 150, many, 0, bias, all, 150);
        CpuMatmul single = new CpuMatmul(new CpuPool(1));
        for (int t : new int[] {0, 63, 64, 127, 128, 149}) {
            single.matmul(w, x, t * cols, 1, one, 0, bias, new int[] {0}, 1);
            for (int r = 0; r < rows; r++) {
                assertEquals(Float.floatToRawIntBits(one[r]), Float.floatToRawIntBits(many[t * rows + r]), "token " + t + " row " + r);
            }
        }
    }

    @Test
    void aPassOfSeveralMatricesEqualsOneProductAfterAnother() {
        // q, k, v of one input, sparse, some tokens prompt rows and some not: transposed once for all three.
        int cols = 96, tokens = 9;
        int[] rows = {70, 18, 18};
        SplittableRandom rnd = new SplittableRandom(8);
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        WeightMatrix[] ws = new WeightMatrix[3];
        float[][] biases = new float[3][], pass = new float[3][], single = new float[3][];
        float[] x = TestMatrices.randomVector(tokens * cols, 9);
        int[] prompt = {0, 1, 2, 4, 5, 8};
        for (int m = 0; m < 3; m++) {
            ws[m] = BitmaskMatrix.fromDense(weights(rnd, rows[m], cols, 0.5, "bitmask"), rows[m], cols, DType.BF16);
            biases[m] = m == 1 ? null : TestMatrices.randomVector(rows[m], 20 + m);
            pass[m] = new float[tokens * rows[m]];
            single[m] = new float[tokens * rows[m]];
            mm.matmul(ws[m], x, 0, tokens, single[m], 0, biases[m], prompt, prompt.length);
        }
        mm.matmul(ws, 3, x, tokens, pass, biases, prompt, prompt.length);
        for (int m = 0; m < 3; m++) {
            for (int i = 0; i < pass[m].length; i++) {
                assertEquals(Float.floatToRawIntBits(single[m][i]), Float.floatToRawIntBits(pass[m][i]), "matrix " + m + " at " + i);
            }
        }
    }

    @Test
    void itsScratchIsCountedInTheBackendsScratchBytes() {
        // The memory gauge reports activations plus this scratch: the transposed prompt and the kept-value lists.
        int rows = 40, cols = 300, tokens = 130;
        MaskedMatrix w = BitmaskMatrix.fromDense(weights(new SplittableRandom(1), rows, cols, 0.5, "bitmask"), rows, cols, DType.BF16);
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        long before = mm.scratchBytes();
        int[] all = java.util.stream.IntStream.range(0, tokens).toArray();
        mm.matmul(w, TestMatrices.randomVector(tokens * cols, 2), 0, tokens, new float[tokens * rows], 0, null, all, tokens);
        long transposed = 4L * SparsePrompt.transposedSize(tokens, cols);
        long lists = 2L * 4 * 2 * SparsePrompt.PANEL_ROWS * SparsePrompt.listCapacity(cols); // two threads' idx and val
        assertTrue(mm.scratchBytes() - before >= transposed + lists, (mm.scratchBytes() - before) + " bytes");
    }

    private static void check(MaskedMatrix w, float[] dense, int rows, int cols, int tokens, SplittableRandom rnd, String what) {
        float[] x = TestMatrices.randomVector(tokens * cols + 3, rnd.nextLong());
        float[] bias = rnd.nextBoolean() ? TestMatrices.randomVector(rows, rnd.nextLong()) : null;
        // A random subset of the tokens are prompt rows (all of them half the time).
        int[] prompt = new int[tokens];
        int n = 0;
        boolean allPrompt = rnd.nextBoolean();
        for (int t = 0; t < tokens; t++) if (allPrompt || rnd.nextBoolean()) prompt[n++] = t;
        float[] decodeOnly = new float[tokens * rows + 2];
        new CpuMatmul(new CpuPool(1)).matmul((WeightMatrix) w, x, 3, tokens, decodeOnly, 2, bias);
        for (int threads : new int[] {1, 2}) {
            float[] y = new float[tokens * rows + 2];
            new CpuMatmul(new CpuPool(threads)).matmul(w, x, 3, tokens, y, 2, bias, prompt, n);
            for (int t = 0, p = 0; t < tokens; t++) {
                boolean isPrompt = p < n && prompt[p] == t;
                if (isPrompt) p++;
                for (int r = 0; r < rows; r++) {
                    float got = y[2 + t * rows + r];
                    String at = what + " threads=" + threads + " t=" + t + (isPrompt ? " (prompt)" : " (decode)") + " r=" + r;
                    if (!isPrompt) {
                        assertEquals(Float.floatToRawIntBits(decodeOnly[2 + t * rows + r]), Float.floatToRawIntBits(got), at);
                        continue;
                    }
                    assertEquals(Float.floatToRawIntBits(SparsePrompt.reference(w, r, x, 3 + t * cols, bias)),
                            Float.floatToRawIntBits(got), at);
                    double ref = bias == null ? 0 : bias[r], mag = Math.abs(ref);
                    for (int k = 0; k < cols; k++) {
                        double v = io.sparseserve.tensor.DTypeConvert.round(dense[r * cols + k], w.dtype());
                        ref += v * x[3 + t * cols + k];
                        mag += Math.abs(v * x[3 + t * cols + k]);
                    }
                    assertEquals(ref, got, 1e-5 * mag + 1e-6, at);
                }
            }
        }
    }

    /** Random weights with about {@code sparsity} zeros, unstructured or 2:4 (two zeros in every group of four). */
    private static float[] weights(SplittableRandom rnd, int rows, int cols, double sparsity, String format) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        if (format.equals("2:4")) {
            for (int i = 0; i < w.length; i += 4) {
                int a = rnd.nextInt(4), b = (a + 1 + rnd.nextInt(3)) % 4;
                w[i + a] = 0f;
                w[i + b] = 0f;
            }
        } else {
            for (int i = 0; i < w.length; i++) if (rnd.nextDouble() < sparsity) w[i] = 0f;
        }
        return w;
    }
}
