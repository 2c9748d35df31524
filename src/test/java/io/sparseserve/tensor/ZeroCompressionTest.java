package io.sparseserve.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Dense matrices with exact zeros compress to the format their zeros allow and decode to the same values. */
class ZeroCompressionTest {

    private static DenseMatrix stored(float[] w, int rows, int cols, DType dtype, Arena arena) {
        MemorySegment seg = arena.allocate((long) w.length * dtype.bytes(), 8);
        for (int i = 0; i < w.length; i++) DTypeConvert.setFloat(seg, dtype, i, w[i]);
        return new DenseMatrix(seg, dtype, rows, cols);
    }

    @ParameterizedTest
    @CsvSource({"BF16, 37, 53", "F16, 8, 8", "F32, 5, 129", "BF16, 64, 768", "BF16, 1, 1"})
    void unstructuredZerosBecomeABitmaskMatrixWithTheSameValues(DType dtype, int rows, int cols) {
        float[] w = SparseMatrixTest.randomSparse(rows, cols, 0.45, dtype, rows * 31L + cols);
        w[0] = -0f; // a negative zero is a zero too
        try (Arena arena = Arena.ofConfined()) {
            DenseMatrix d = stored(w, rows, cols, dtype, arena);
            ZeroCompression.Scan scan = ZeroCompression.scan(d);
            long zeros = 0;
            for (float v : w) if (v == 0f) zeros++;
            assertEquals(zeros, scan.zeros());
            MaskedMatrix c = ZeroCompression.compress(d, scan, arena);
            if (!scan.twoFour()) assertInstanceOf(BitmaskMatrix.class, c);
            assertEquals(zeros, c.zeros());
            float[] expected = w.clone();
            expected[0] = 0f; // an absent value decodes as +0
            SparseMatrixTest.assertDecodesAs(expected, c);
        }
    }

    @ParameterizedTest
    @CsvSource({"BF16, 7, 36", "F32, 3, 8", "F16, 16, 768"})
    void everyGroupOfFourWithTwoZerosBecomesTwoFour(DType dtype, int rows, int cols) {
        float[] w = SparseMatrixTest.randomNm(rows, cols, 2, 4, dtype, cols);
        // A group with three zeros still qualifies: one of its zeros is stored as a kept value.
        w[1] = w[2] = w[3] = 0f;
        w[0] = 1f;
        try (Arena arena = Arena.ofConfined()) {
            ZeroCompression.Scan scan = ZeroCompression.scan(stored(w, rows, cols, dtype, arena));
            assertTrue(scan.twoFour());
            MaskedMatrix c = ZeroCompression.compress(stored(w, rows, cols, dtype, arena), scan, arena);
            NmMatrix nm = assertInstanceOf(NmMatrix.class, c);
            assertEquals((long) rows * cols / 2, nm.values().byteSize() / dtype.bytes());
            SparseMatrixTest.assertDecodesAs(w, c);
        }
    }

    @ParameterizedTest
    @CsvSource({"BF16, 4, 10", "BF16, 4, 12"})
    void aGroupWithOneZeroOrAWidthNotAMultipleOfFourIsNotTwoFour(DType dtype, int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = i % 4 < 2 ? 0f : 1f;
        w[w.length - 4] = 1f; // cols 12: the last group keeps three
        try (Arena arena = Arena.ofConfined()) {
            ZeroCompression.Scan scan = ZeroCompression.scan(stored(w, rows, cols, dtype, arena));
            assertFalse(scan.twoFour());
        }
    }
}
