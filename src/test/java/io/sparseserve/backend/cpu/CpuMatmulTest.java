package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.TestMatrices;
import java.lang.foreign.Arena;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** The blocked matrix kernel against a scalar double-precision reference, for every dtype and awkward shapes. */
class CpuMatmulTest {

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void matchesScalarReference(DType dtype) {
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        int[][] shapes = {{1, 1, 1}, {4, 16, 1}, {7, 45, 3}, {64, 64, 4}, {33, 1100, 9}, {130, 2100, 5}, {8, 31, 17}};
        try (Arena arena = Arena.ofShared()) {
            for (int[] shape : shapes) {
              // Each shape also with one token: decode takes a fused path for BF16 (Bf16Gemv).
              for (int[] s : new int[][] {shape, {shape[0], shape[1], 1}, {shape[0], shape[1] + 1, 1}}) {
                int rows = s[0], cols = s[1], tokens = s[2];
                TestMatrices.Stored w = TestMatrices.random(dtype, rows, cols, rows * 31L + cols, arena);
                float[] x = TestMatrices.randomVector(tokens * cols + 3, 7);
                float[] bias = TestMatrices.randomVector(rows, 9);
                float[] y = new float[tokens * rows + 2];
                mm.matmul(w.matrix(), x, 3, tokens, y, 2, bias);
                for (int t = 0; t < tokens; t++) {
                    for (int r = 0; r < rows; r++) {
                        double ref = bias[r];
                        double mag = Math.abs(bias[r]);
                        for (int k = 0; k < cols; k++) {
                            double p = (double) w.values()[r * cols + k] * x[3 + t * cols + k];
                            ref += p;
                            mag += Math.abs(p);
                        }
                        assertEquals(ref, y[2 + t * rows + r], 1e-5 * mag + 1e-6,
                                dtype + " " + rows + "x" + cols + " T=" + tokens + " at t=" + t + " r=" + r);
                    }
                }
              }
            }
        }
    }

    /**
     * BF16: any token of a batch gets exactly (bit for bit) what it gets alone, so batching never changes results.
     * From the first call: the lane sums (Lanes) have one order in every JIT tier, so no warm-up is needed.
     */
    @org.junit.jupiter.api.Test
    void bf16BatchedRowsEqualEachRowAlone() {
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : new int[][] {{37, 70, 5}, {64, 256, 16}, {130, 2100, 3}, {9, 34, 2}}) {
                int rows = s[0], cols = s[1], tokens = s[2];
                TestMatrices.Stored w = TestMatrices.random(DType.BF16, rows, cols, rows * 7L + cols, arena);
                float[] x = TestMatrices.randomVector(tokens * cols, 11);
                float[] bias = TestMatrices.randomVector(rows, 13);
                assertEquals(null, compare(mm, w, x, bias, rows, cols, tokens), rows + "x" + cols + " T=" + tokens);
            }
        }
    }

    /** Null when every token's batched row equals its row computed alone, bit for bit; else where they differ. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"dense", "bitmask", "2:4"})
    void decodeGivesTheSameRowsWhicheverThreadComputesThem(String format) {
        // Three threads' ranges of a 203-row matrix, run one after another: the thread that runs first finishes its
        // own panels and steals every panel of the others (as when they start late); the others then find only their
        // leftover rows. The result must equal the reference and be bit-identical to the usual parallel run.
        int rows = 203, cols = 136;
        // Sparse matrices take DecodePass only where SparseGemv's instructions exist (DecodePass.applies).
        org.junit.jupiter.api.Assumptions.assumeTrue(format.equals("dense") || SparseGemv.SUPPORTED, "no AVX-512 VBMI2 here");
        try (Arena arena = Arena.ofShared()) {
            TestMatrices.Stored dense = TestMatrices.random(DType.BF16, rows, cols, 5, arena);
            float[] values = dense.values().clone();
            for (int i = 0; i < values.length; i++) if (format.equals("bitmask") ? i % 3 == 0 : format.equals("2:4") && i % 4 < 2) values[i] = 0f;
            io.sparseserve.tensor.WeightMatrix w = switch (format) {
                case "bitmask" -> io.sparseserve.tensor.BitmaskMatrix.fromDense(values, rows, cols, DType.BF16);
                case "2:4" -> io.sparseserve.tensor.NmMatrix.fromDense(values, rows, cols, 2, 4, DType.BF16);
                default -> dense.matrix();
            };
            float[] x = TestMatrices.randomVector(cols, 6), bias = TestMatrices.randomVector(rows, 8);
            float[] xe = new float[cols / 2], xo = new float[cols / 2];
            Bf16Gemv.split(x, 0, cols, xe, xo);
            float[] stolen = new float[rows], parallel = new float[rows];
            DecodePass decode = new DecodePass(3);
            decode.prepare(new io.sparseserve.tensor.WeightMatrix[] {w}, new float[][] {stolen}, null, new float[][] {bias}, 1,
                    xe, xo);
            decode.run(2, 3, 2);
            decode.run(0, 1, 0);
            decode.run(1, 2, 1);
            new CpuMatmul(new CpuPool(3)).matmul(w, x, 0, 1, parallel, 0, bias);
            for (int r = 0; r < rows; r++) {
                double ref = bias[r];
                for (int k = 0; k < cols; k++) ref += (double) values[r * cols + k] * x[k];
                assertEquals(ref, stolen[r], 1e-4, format + " row " + r);
                assertEquals(Float.floatToRawIntBits(parallel[r]), Float.floatToRawIntBits(stolen[r]), format + " row " + r);
            }
        }
    }

    @org.junit.jupiter.api.Test
    void fusedPassOfSeveralMatricesEqualsOneProductAfterAnother() {
        // A layer's q, k, v with grouped-query attention (k and v narrower than q), one bias missing; one token (one
        // parallel pass over BF16) and three tokens (one product after another).
        int cols = 96;
        int[] rows = {70, 18, 18};
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        try (Arena arena = Arena.ofShared()) {
            for (DType dtype : new DType[] {DType.BF16, DType.F16}) {
                for (int tokens : new int[] {1, 3}) {
                    io.sparseserve.tensor.WeightMatrix[] ws = new io.sparseserve.tensor.WeightMatrix[3];
                    float[][] biases = new float[3][], fused = new float[3][], single = new float[3][];
                    float[] x = TestMatrices.randomVector(tokens * cols, 3);
                    for (int m = 0; m < 3; m++) {
                        ws[m] = TestMatrices.random(dtype, rows[m], cols, 40 + m, arena).matrix();
                        biases[m] = m == 1 ? null : TestMatrices.randomVector(rows[m], 50 + m);
                        fused[m] = new float[tokens * rows[m]];
                        single[m] = new float[tokens * rows[m]];
                        mm.matmul(ws[m], x, 0, tokens, single[m], 0, biases[m]);
                    }
                    mm.matmul(ws, 3, x, tokens, fused, biases);
                    for (int m = 0; m < 3; m++) {
                        for (int i = 0; i < fused[m].length; i++) {
                            assertEquals(Float.floatToRawIntBits(single[m][i]), Float.floatToRawIntBits(fused[m][i]),
                                    dtype + " T=" + tokens + " matrix " + m + " at " + i);
                        }
                    }
                }
            }
        }
    }

    /**
     * Compressed sparse BF16 (bitmask and 2:4), widths with and without a ragged tail past the last 32 columns (and
     * only a tail): against the scalar reference; every token of a batch bit for bit what it gets alone (1 to 33
     * tokens: 2x4, 2x2 and single tiles); and, where the sparse kernels run (AVX-512 VBMI2), bit for bit what the same
     * weights give held dense with their zeros (the kernels expand the kept values and do dense BF16's arithmetic).
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"bitmask", "2:4"})
    void sparseMatchesReferenceBatchesBitForBitAndEqualsDenseWithZeros(String format) {
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        int[][] shapes = {{37, 68, 5}, {64, 256, 16}, {130, 2100, 3}, {9, 36, 2}, {203, 132, 33}, {12, 32, 1}, {6, 4, 7}, {5, 1028, 9}};
        java.util.SplittableRandom rnd = new java.util.SplittableRandom(17);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : shapes) {
                int rows = s[0], cols = s[1], tokens = s[2];
                TestMatrices.Stored dense = TestMatrices.random(DType.BF16, rows, cols, rows * 13L + cols, arena);
                float[] values = dense.values().clone();
                for (int r = 0; r < rows; r++) {
                    // Rows of every density: all kept, none kept, and random ones around a half.
                    double keep = r % 7 == 0 ? 1.0 : r % 7 == 1 ? 0.0 : 0.2 + 0.6 * rnd.nextDouble();
                    for (int c = 0; c < cols; c++) {
                        int i = r * cols + c;
                        if (format.equals("2:4") ? c % 4 == (r + c / 4) % 4 || c % 4 == (r + c / 4 + 2) % 4 : rnd.nextDouble() >= keep) values[i] = 0f;
                    }
                }
                io.sparseserve.tensor.WeightMatrix w = format.equals("2:4")
                        ? io.sparseserve.tensor.NmMatrix.fromDense(values, rows, cols, 2, 4, DType.BF16)
                        : io.sparseserve.tensor.BitmaskMatrix.fromDense(values, rows, cols, DType.BF16);
                assertEquals(SparseGemv.SUPPORTED, SparseGemv.applies(w), "the sparse kernels take a fromDense matrix");
                float[] x = TestMatrices.randomVector(tokens * cols, 19), bias = TestMatrices.randomVector(rows, 23);
                String where = format + " " + rows + "x" + cols + " T=" + tokens;
                assertEquals(null, compare(mm, w, x, bias, rows, cols, tokens), where);
                float[] y = new float[tokens * rows];
                mm.matmul(w, x, 0, tokens, y, 0, bias);
                for (int t = 0; t < tokens; t++) {
                    for (int r = 0; r < rows; r++) {
                        double ref = bias[r], mag = Math.abs(bias[r]);
                        for (int k = 0; k < cols; k++) {
                            double p = (double) values[r * cols + k] * x[t * cols + k];
                            ref += p;
                            mag += Math.abs(p);
                        }
                        assertEquals(ref, y[t * rows + r], 1e-5 * mag + 1e-6, where + " t=" + t + " r=" + r);
                    }
                }
                if (SparseGemv.SUPPORTED) {
                    TestMatrices.Stored zeros = TestMatrices.of(DType.BF16, values, rows, cols, arena);
                    float[] yd = new float[tokens * rows];
                    mm.matmul(zeros.matrix(), x, 0, tokens, yd, 0, bias);
                    for (int i = 0; i < y.length; i++) {
                        assertEquals(Float.floatToRawIntBits(yd[i]), Float.floatToRawIntBits(y[i]), where + " at " + i + " vs dense");
                    }
                }
            }
        }
    }

    private static String compare(CpuMatmul mm, TestMatrices.Stored w, float[] x, float[] bias, int rows, int cols, int tokens) {
        return compare(mm, w.matrix(), x, bias, rows, cols, tokens);
    }

    private static String compare(CpuMatmul mm, io.sparseserve.tensor.WeightMatrix w, float[] x, float[] bias, int rows,
                                  int cols, int tokens) {
        float[] batched = new float[tokens * rows];
        mm.matmul(w, x, 0, tokens, batched, 0, bias);
        float[] alone = new float[rows];
        for (int t = 0; t < tokens; t++) {
            mm.matmul(w, x, t * cols, 1, alone, 0, bias);
            for (int r = 0; r < rows; r++) {
                if (Float.floatToRawIntBits(alone[r]) != Float.floatToRawIntBits(batched[t * rows + r])) {
                    return rows + "x" + cols + " T=" + tokens + " t=" + t + " r=" + r + ": " + alone[r] + " vs " + batched[t * rows + r];
                }
            }
        }
        return null;
    }
}
