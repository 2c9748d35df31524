package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The device layouts of pruned matrices (tiled bitmask, 2:4 metadata, CSR), rebuilt into dense matrices with the
 * kernels' own index formulas (native/KERNELS.md) and compared with the original, on ragged shapes.
 */
class SparseRelayoutTest {
    private static final DType[] DTYPES = {DType.F32, DType.F16, DType.BF16};

    @Test
    void bitmaskTilesRebuildTheMatrix() {
        Random rnd = new Random(11);
        int[][] shapes = {{1, 1}, {3, 63}, {5, 64}, {7, 65}, {17, 130}, {33, 200}, {9, 1000}, {64, 128}};
        for (int[] s : shapes) {
            for (DType dtype : DTYPES) {
                float[] w = randomSparse(rnd, s[0], s[1], rnd.nextDouble(0.1, 0.9));
                BitmaskMatrix m = BitmaskMatrix.fromDense(w, s[0], s[1], dtype);
                BitmaskTiles t = BitmaskTiles.of(m);
                assertEquals(BitmaskTiles.tilesPerRow(s[1]) * 8L * s[0], t.bits().length);
                assertArrayEquals(dense(m), fromTiles(t), "bitmask tiles " + s[0] + "x" + s[1] + " " + dtype);
                assertArrayEquals(dense(m), fromCsr(CsrLayout.of(m)), "CSR " + s[0] + "x" + s[1] + " " + dtype);
            }
        }
    }

    @Test
    void nm24MetadataRebuildsTheMatrix() {
        Random rnd = new Random(12);
        int[][] shapes = {{1, 4}, {3, 12}, {5, 20}, {7, 68}, {17, 132}, {33, 204}, {2, 1004}};
        for (int[] s : shapes) {
            for (DType dtype : DTYPES) {
                NmMatrix m = NmMatrix.fromDense(random24(rnd, s[0], s[1]), s[0], s[1], 2, 4, dtype);
                Nm24Meta meta = Nm24Meta.of(m);
                assertEquals((long) s[0] * ((s[1] + 7) / 8), meta.meta().length);
                assertArrayEquals(dense(m), fromNm24(meta), "2:4 " + s[0] + "x" + s[1] + " " + dtype);
                assertArrayEquals(dense(m), fromCsr(CsrLayout.of(m)), "CSR of 2:4 " + s[0] + "x" + s[1] + " " + dtype);
            }
        }
    }

    @Test
    void otherPatternsAreRefusedByThe24Layout() {
        float[] w = new float[8 * 8];
        for (int i = 0; i < w.length; i += 8) w[i] = 1;
        NmMatrix m = NmMatrix.fromDense(w, 8, 8, 1, 8, DType.F32);
        assertThrows(IllegalArgumentException.class, () -> Nm24Meta.of(m));
    }

    /** Issue 8 acceptance 6: a 50% model's linears take at most 0.6x their dense bytes on the device. */
    @Test
    void halfPrunedBf16TakesAboutFiveNinthsOfDense() {
        Random rnd = new Random(13);
        int rows = 256, cols = 4096;
        float[] w = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            // exactly half of each row kept, at random columns (as magnitude pruning per row does)
            int[] perm = rnd.ints(0, cols).distinct().limit(cols / 2).toArray();
            for (int c : perm) w[r * cols + c] = (float) rnd.nextGaussian() + 3f;
        }
        BitmaskMatrix m = BitmaskMatrix.fromDense(w, rows, cols, DType.BF16);
        double tiles = (double) BitmaskTiles.of(m).bytes() / m.denseBytes();
        assertTrue(tiles > 0.56 && tiles < 0.565, "bitmask tiles / dense = " + tiles);
        double csr = (double) CsrLayout.of(m).bytes() / m.denseBytes();
        assertTrue(csr > 1.49 && csr < 1.51, "CSR / dense = " + csr);

        NmMatrix nm = NmMatrix.fromDense(random24(rnd, rows, cols), rows, cols, 2, 4, DType.BF16);
        assertEquals(0.5625, (double) Nm24Meta.of(nm).bytes() / nm.denseBytes(), 1e-12);
    }

    // ---- rebuilding, with the formulas the kernels use

    private static float[] fromTiles(BitmaskTiles t) {
        float[] out = new float[t.rows() * t.cols()];
        for (int r = 0; r < t.rows(); r++) {
            long start = t.rowStart().get(java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED, 8L * r);
            long before = 0; // popcount of the row's tiles before j
            for (int j = 0; j < t.tilesPerRow(); j++) {
                long b = t.tile(r, j);
                for (int i = 0; i < 64; i++) {
                    int c = 64 * j + i;
                    if ((b >>> i & 1) == 0) continue;
                    assertTrue(c < t.cols(), "bit set past the row's end");
                    out[r * t.cols() + c] = DTypeConvert.getFloat(t.values(), t.dtype(), start + before + BitmaskTiles.tileValueSlot(b, i));
                }
                before += Long.bitCount(b);
            }
        }
        return out;
    }

    private static float[] fromNm24(Nm24Meta m) {
        float[] out = new float[m.rows() * m.cols()];
        for (int r = 0; r < m.rows(); r++) {
            for (int g = 0; g < m.cols() / 4; g++) {
                int nib = m.nibble(r, g), first = nib & 3, second = nib >> 2;
                assertTrue(first < second, "first < second in the nibble");
                long v = (long) r * (m.cols() / 2) + 2L * g;
                out[r * m.cols() + 4 * g + first] = DTypeConvert.getFloat(m.values(), m.dtype(), v);
                out[r * m.cols() + 4 * g + second] = DTypeConvert.getFloat(m.values(), m.dtype(), v + 1);
            }
        }
        return out;
    }

    private static float[] fromCsr(CsrLayout csr) {
        float[] out = new float[csr.rows() * csr.cols()];
        for (int r = 0; r < csr.rows(); r++) {
            for (int k = csr.rowPtr()[r]; k < csr.rowPtr()[r + 1]; k++) {
                if (k > csr.rowPtr()[r]) assertTrue(csr.colInd()[k] > csr.colInd()[k - 1], "columns ascend");
                out[r * csr.cols() + csr.colInd()[k]] = DTypeConvert.getFloat(csr.values(), csr.dtype(), k);
            }
        }
        return out;
    }

    private static float[] dense(WeightMatrix m) {
        float[] out = new float[m.rows() * m.cols()];
        m.decode(0, m.rows(), 0, m.cols(), out, 0);
        return out;
    }

    private static float[] randomSparse(Random rnd, int rows, int cols, double density) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) if (rnd.nextDouble() < density) w[i] = (float) rnd.nextGaussian() + 4f;
        return w;
    }

    /** Exactly two non-zeros in every group of four, at random positions. */
    private static float[] random24(Random rnd, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int g = 0; g < w.length; g += 4) {
            int a = rnd.nextInt(4), b = (a + 1 + rnd.nextInt(3)) % 4;
            w[g + a] = (float) rnd.nextGaussian() + 4f;
            w[g + b] = (float) rnd.nextGaussian() - 4f;
        }
        return w;
    }
}
