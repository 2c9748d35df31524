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
     * Bit-exact once the kernels are JIT-compiled: before that, the interpreter's and C1's lane reductions add in
     * another order than C2's (see the note in Bf16Gemv). So each shape is warmed up until the JIT has compiled its
     * paths (bounded: 60 s), and then must agree exactly.
     */
    @org.junit.jupiter.api.Test
    void bf16BatchedRowsEqualEachRowAloneOnceCompiled() {
        CpuMatmul mm = new CpuMatmul(new CpuPool(2));
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : new int[][] {{37, 70, 5}, {64, 256, 16}, {130, 2100, 3}, {9, 34, 2}}) {
                int rows = s[0], cols = s[1], tokens = s[2];
                TestMatrices.Stored w = TestMatrices.random(DType.BF16, rows, cols, rows * 7L + cols, arena);
                float[] x = TestMatrices.randomVector(tokens * cols, 11);
                float[] bias = TestMatrices.randomVector(rows, 13);
                String mismatch = compare(mm, w, x, bias, rows, cols, tokens);
                long deadline = System.nanoTime() + 60_000_000_000L;
                while (mismatch != null && System.nanoTime() < deadline) {
                    for (int i = 0; i < 500; i++) compare(mm, w, x, bias, rows, cols, tokens);
                    mismatch = compare(mm, w, x, bias, rows, cols, tokens);
                }
                assertEquals(null, mismatch, "still different after 60 s of warm-up");
            }
        }
    }

    /** Null when every token's batched row equals its row computed alone, bit for bit; else where they differ. */
    private static String compare(CpuMatmul mm, TestMatrices.Stored w, float[] x, float[] bias, int rows, int cols, int tokens) {
        float[] batched = new float[tokens * rows];
        mm.matmul(w.matrix(), x, 0, tokens, batched, 0, bias);
        float[] alone = new float[rows];
        for (int t = 0; t < tokens; t++) {
            mm.matmul(w.matrix(), x, t * cols, 1, alone, 0, bias);
            for (int r = 0; r < rows; r++) {
                if (Float.floatToRawIntBits(alone[r]) != Float.floatToRawIntBits(batched[t * rows + r])) {
                    return rows + "x" + cols + " T=" + tokens + " t=" + t + " r=" + r + ": " + alone[r] + " vs " + batched[t * rows + r];
                }
            }
        }
        return null;
    }
}
