package io.sparseserve.prune;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.model.InvalidInputException;
import org.junit.jupiter.api.Test;

/** Magnitude and Wanda: which weights go, on small hand-checked and random matrices. */
class BaselinesTest {

    @Test
    void magnitudeUsesOneThresholdPerMatrixWithTies() {
        // |w| sorted: 0.1 0.2 0.2 0.2 0.5 0.6 0.7 0.8; the 50% threshold is element 4 (0.5): five weights go.
        float[] w = {0.2f, -0.8f, 0.1f, -0.2f, 0.6f, 0.5f, 0.2f, -0.7f};
        Magnitude.prune(w, 2, 4, new SparsityPattern.Unstructured(0.5));
        assertArrayEquals(new float[] {0, -0.8f, 0, 0, 0.6f, 0, 0, -0.7f}, w);
        // Ties at the threshold all go: 0.25 of 8 is index 2 (0.2), and every 0.2 is removed with the 0.1.
        float[] t = {0.2f, -0.8f, 0.1f, -0.2f, 0.6f, 0.5f, 0.2f, -0.7f};
        Magnitude.prune(t, 2, 4, new SparsityPattern.Unstructured(0.25));
        assertArrayEquals(new float[] {0, -0.8f, 0, 0, 0.6f, 0.5f, 0, -0.7f}, t);
    }

    @Test
    void magnitudeNMDropsTheSmallestOfEachGroup() {
        float[] w = {0.3f, -0.1f, 0.2f, 0.4f, 1f, 1f, 1f, 1f};
        Magnitude.prune(w, 1, 8, new SparsityPattern.NM(2, 4));
        assertArrayEquals(new float[] {0.3f, 0, 0, 0.4f, 0, 0, 1f, 1f}, w);
    }

    @Test
    void wandaScalesByInputNormsPerRow() {
        // Row 0: |w|·‖x‖ = 1·1, 1·4, 3·0.25, 2·1 -> drops columns 2 and 0 (0.75 and 1).
        float[] w = {1f, 1f, 3f, 2f, 1f, 2f, 3f, 4f};
        double[] diag = {1, 16, 0.0625, 1}; // norms are square roots of the Hessian diagonal
        Wanda.prune(w, 2, 4, diag, new SparsityPattern.Unstructured(0.5));
        assertArrayEquals(new float[] {0, 1f, 0, 2f, 0, 2f, 0, 4f}, w);
        float[] nm = {1f, 1f, 3f, 2f, 1f, 2f, 3f, 4f};
        Wanda.prune(nm, 2, 4, diag, new SparsityPattern.NM(2, 4));
        assertArrayEquals(new float[] {0, 1f, 0, 2f, 0, 2f, 0, 4f}, nm);
    }

    @Test
    void wandaPrunesExactlyTheRowShareOfEveryRow() {
        int rows = 9, cols = 50;
        float[] w = SparseGptTest.randomWeights(rows, cols, 3);
        double[] diag = new double[cols];
        for (int j = 0; j < cols; j++) diag[j] = 1 + j % 7;
        Wanda.prune(w, rows, cols, diag, new SparsityPattern.Unstructured(0.6));
        for (int r = 0; r < rows; r++) {
            int zeros = 0;
            for (int c = 0; c < cols; c++) if (w[r * cols + c] == 0) zeros++;
            assertEquals(30, zeros, "row " + r);
        }
    }

    @Test
    void patternsAreValidated() {
        assertThrows(InvalidInputException.class, () -> new SparsityPattern.Unstructured(1.0));
        assertThrows(InvalidInputException.class, () -> new SparsityPattern.Unstructured(-0.1));
        assertThrows(InvalidInputException.class, () -> SparsityPattern.parsePattern("4:4"));
        assertThrows(InvalidInputException.class, () -> SparsityPattern.parsePattern("5:4"));
        assertThrows(InvalidInputException.class, () -> SparsityPattern.parsePattern("2-4"));
        assertEquals(0.5, SparsityPattern.parsePattern("4:8").sparsity());
        assertTrue(SparsityPattern.of(null, null) instanceof SparsityPattern.Unstructured u && u.sparsity() == 0.5);
    }

    private static void assertArrayEquals(float[] expected, float[] actual) {
        org.junit.jupiter.api.Assertions.assertArrayEquals(expected, actual, java.util.Arrays.toString(actual));
    }
}
