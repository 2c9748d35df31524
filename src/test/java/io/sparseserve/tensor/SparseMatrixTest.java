package io.sparseserve.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.cpu.CpuBackend;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.EnumSource;

/** The bitmask formats decode every panel exactly as the dense matrix they were built from. */
class SparseMatrixTest {

    /** A random matrix (values already in dtype) with about {@code density} of its elements non-zero. */
    static float[] randomSparse(int rows, int cols, double density, DType dtype, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            if (rnd.nextDouble() < density) w[i] = DTypeConvert.round((float) rnd.nextGaussian() + 0.001f, dtype);
        }
        return w;
    }

    /** Keeps n random positions of each group of m, the rest zero. */
    static float[] randomNm(int rows, int cols, int n, int m, DType dtype, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int g = 0; g < w.length; g += m) {
            int placed = 0;
            while (placed < n) {
                int j = rnd.nextInt(m);
                if (w[g + j] == 0f) {
                    w[g + j] = DTypeConvert.round((float) rnd.nextGaussian() + 0.001f, dtype);
                    if (w[g + j] != 0f) placed++;
                }
            }
        }
        return w;
    }

    static void assertDecodesAs(float[] expected, WeightMatrix w) {
        int rows = w.rows(), cols = w.cols();
        // Whole rows, then panels at odd offsets and lengths (the vector path's tails and the countBefore path).
        float[] all = new float[rows * cols];
        w.decode(0, rows, 0, cols, all, 0);
        assertArrayEquals(expected, all);
        int[][] cases = {{1, 3, 1, 17}, {0, 4, 5, cols - 5}, {rows - 2, 2, cols / 2, cols - cols / 2}, {2, 3, cols - 1, 1}};
        for (int[] cs : cases) {
            int r0 = cs[0], nr = cs[1], k0 = cs[2], len = Math.min(cs[3], cols - k0);
            if (r0 < 0 || r0 + nr > rows || len <= 0) continue;
            float[] panel = new float[nr * len + 3];
            w.decode(r0, nr, k0, len, panel, 3);
            for (int i = 0; i < nr; i++) {
                for (int j = 0; j < len; j++) {
                    assertEquals(expected[(r0 + i) * cols + k0 + j], panel[3 + i * len + j],
                            "row " + (r0 + i) + " col " + (k0 + j) + " of panel " + java.util.Arrays.toString(cs));
                }
            }
        }
    }

    @ParameterizedTest
    @CsvSource({"BF16, 7, 64, 0.5", "F16, 5, 100, 0.3", "F32, 9, 33, 0.9", "BF16, 3, 2048, 0.5", "BF16, 4, 8, 0.0",
            "F32, 6, 1500, 1.0"})
    void bitmaskDecodesLikeDense(DType dtype, int rows, int cols, double density) {
        float[] w = randomSparse(rows, cols, density, dtype, rows * 31L + cols);
        BitmaskMatrix b = BitmaskMatrix.fromDense(w, rows, cols, dtype);
        assertDecodesAs(w, b);
        long zeros = 0;
        for (float v : w) if (v == 0f) zeros++;
        assertEquals(zeros, b.zeros());
        assertEquals(rows * cols - zeros, b.keptCount());
        assertEquals("sparse-bitmask", b.format());
        assertEquals((rows * cols - zeros) * dtype.bytes() + (long) rows * ((cols + 7) / 8) + 8L * rows, b.bytes());
    }

    @ParameterizedTest
    @CsvSource({"BF16, 6, 64, 2, 4", "F16, 3, 40, 2, 4", "F32, 5, 96, 4, 8", "BF16, 4, 2048, 2, 4", "BF16, 2, 36, 1, 3"})
    void nmDecodesLikeDense(DType dtype, int rows, int cols, int n, int m) {
        float[] w = randomNm(rows, cols, n, m, dtype, rows * 17L + cols);
        NmMatrix b = NmMatrix.fromDense(w, rows, cols, n, m, dtype);
        assertDecodesAs(w, b);
        assertEquals((long) rows * cols * (m - n) / m, b.zeros());
        assertEquals((long) rows * cols / m * n * dtype.bytes() + (long) rows * ((cols + 7) / 8), b.bytes());
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16"})
    void sparseMatmulEqualsDenseMatmul(DType dtype) {
        int rows = 37, cols = 1100, tokens = 5; // columns past one K block, rows not a multiple of the panel
        float[] w = randomSparse(rows, cols, 0.5, dtype, 7);
        float[] x = new float[tokens * cols];
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] bias = new float[rows];
        for (int i = 0; i < rows; i++) bias[i] = i * 0.01f;
        CpuBackend cpu = new CpuBackend(16);
        float[] yDense = new float[tokens * rows], ySparse = new float[tokens * rows], yNm = new float[tokens * rows];
        cpu.matmul(DenseMatrix.fromFloats(w, rows, cols, dtype), x, 0, tokens, yDense, 0, bias);
        cpu.matmul(BitmaskMatrix.fromDense(w, rows, cols, dtype), x, 0, tokens, ySparse, 0, bias);
        assertArrayEquals(yDense, ySparse, 1e-4f);
        float[] w24 = randomNm(rows, 1100, 2, 4, dtype, 9);
        cpu.matmul(DenseMatrix.fromFloats(w24, rows, cols, dtype), x, 0, tokens, yDense, 0, null);
        cpu.matmul(NmMatrix.fromDense(w24, rows, cols, 2, 4, dtype), x, 0, tokens, yNm, 0, null);
        assertArrayEquals(yDense, yNm, 1e-4f);
    }

    @org.junit.jupiter.api.Test
    void oneTokenDecodeOfCompressedBf16EqualsTheSameTokenInABatchBitForBit() {
        // One token takes the fused sparse decode kernel, several the general panel kernel: a token's result must
        // not depend on which (continuous batching), and both must match the dense product. Shapes: several column
        // blocks with rows not a multiple of 4, columns not a multiple of the vector, an MLP-sized matrix.
        CpuBackend cpu = new CpuBackend(16);
        int tokens = 5;
        for (int[] shape : new int[][] {{37, 1100}, {203, 136}, {64, 2048}}) {
            int rows = shape[0], cols = shape[1];
            SplittableRandom rnd = new SplittableRandom(rows);
            float[] x = new float[tokens * cols], bias = new float[rows];
            for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
            for (int i = 0; i < rows; i++) bias[i] = (float) rnd.nextGaussian();
            WeightMatrix[] formats = {
                BitmaskMatrix.fromDense(randomSparse(rows, cols, 0.5, DType.BF16, 11), rows, cols, DType.BF16),
                NmMatrix.fromDense(randomNm(rows, cols, 2, 4, DType.BF16, 13), rows, cols, 2, 4, DType.BF16)};
            for (WeightMatrix w : formats) {
                float[] dense = new float[tokens * rows];
                float[] wf = new float[rows * cols];
                w.decode(0, rows, 0, cols, wf, 0);
                cpu.matmul(DenseMatrix.fromFloats(wf, rows, cols, DType.F32), x, 0, tokens, dense, 0, bias);
                String mismatch = compareAloneAndBatched(cpu, w, x, bias, tokens, dense);
                // Bit for bit from the first call: the kernels' lane sums have one order in every JIT tier (Lanes).
                assertNull(mismatch, w.format() + " [" + rows + ", " + cols + "]");
            }
        }
    }

    /** Null when each token alone equals its row of the batch bit for bit (and the dense product within 1e-4). */
    private static String compareAloneAndBatched(CpuBackend cpu, WeightMatrix w, float[] x, float[] bias, int tokens,
                                                 float[] dense) {
        int rows = w.rows(), cols = w.cols();
        float[] batched = new float[tokens * rows], alone = new float[rows];
        cpu.matmul(w, x, 0, tokens, batched, 0, bias);
        for (int t = 0; t < tokens; t++) {
            cpu.matmul(w, x, t * cols, 1, alone, 0, bias);
            for (int r = 0; r < rows; r++) {
                assertEquals(dense[t * rows + r], alone[r], 1e-4f * (1 + Math.abs(dense[t * rows + r])), "t=" + t + " r=" + r);
                if (Float.floatToRawIntBits(alone[r]) != Float.floatToRawIntBits(batched[t * rows + r])) {
                    return "t=" + t + " r=" + r + ": " + alone[r] + " alone vs " + batched[t * rows + r] + " batched";
                }
            }
        }
        return null;
    }

    @ParameterizedTest
    @CsvSource({"BF16", "F32"})
    void inconsistentPartsAreRejected(DType dtype) {
        float[] w = randomSparse(4, 16, 0.5, dtype, 1);
        BitmaskMatrix b = BitmaskMatrix.fromDense(w, 4, 16, dtype);
        // A values segment one element short.
        MemorySegment shortValues = b.values().asSlice(0, b.values().byteSize() - dtype.bytes());
        var e = assertThrows(IllegalArgumentException.class,
                () -> new BitmaskMatrix(shortValues, b.bitmask(), b.rowOffsets(), dtype, 4, 16));
        assertTrue(e.getMessage().contains("keeps"), e.getMessage());
        // A group of 4 with three values is not 2:4.
        float[] bad = randomNm(2, 8, 2, 4, dtype, 2);
        for (int j = 0; j < 4; j++) bad[j] = 1f;
        assertThrows(IllegalArgumentException.class, () -> NmMatrix.fromDense(bad, 2, 8, 2, 4, dtype));
        NmMatrix ok = NmMatrix.fromDense(randomNm(2, 8, 2, 4, dtype, 3), 2, 8, 2, 4, dtype);
        byte[] mask = ok.bitmask().toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        mask[0] = (byte) 0x07; // three bits in the first group, one in the second
        var e2 = assertThrows(IllegalArgumentException.class,
                () -> new NmMatrix(ok.values(), MemorySegment.ofArray(mask), dtype, 2, 8, 2, 4));
        assertTrue(e2.getMessage().contains("keep 3 values"), e2.getMessage());
    }
}
