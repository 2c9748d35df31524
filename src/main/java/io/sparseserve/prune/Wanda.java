package io.sparseserve.prune;

import java.util.Arrays;

/**
 * Wanda (Sun, Liu, Bair and Kolter 2023, "A Simple and Effective Pruning Approach for Large Language Models"):
 * score |W_ij| · ‖X_j‖₂ and prune per output row, without weight updates. Unstructured removes the ⌊cols · S⌋
 * lowest scores of every row (a stable sort, as its {@code prune_wanda}); N:M the M − N lowest of each group. The input
 * norms are the square roots of the Hessian's diagonal: H_jj = (2 / n) ‖X_j‖², a constant factor that changes no
 * ranking.
 */
public final class Wanda {
    private Wanda() {}

    /** Prunes the first rows · cols elements of {@code w} (row-major) in place. */
    public static void prune(float[] w, int rows, int cols, double[] hessianDiagonal, SparsityPattern pattern) {
        prune(w, rows, cols, hessianDiagonal, pattern, new Workspace());
    }

    static void prune(float[] w, int rows, int cols, double[] hessianDiagonal, SparsityPattern pattern, Workspace ws) {
        int size = rows * cols;
        float[] norm = new float[cols];
        for (int j = 0; j < cols; j++) norm[j] = (float) Math.sqrt(Math.max(0, hessianDiagonal[j]));
        float[] score = ws.floats("wanda.score", size);
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < cols; j++) score[r * cols + j] = Math.abs(w[r * cols + j]) * norm[j];
        }
        switch (pattern) {
            case SparsityPattern.Unstructured u -> {
                int drop = (int) (cols * u.sparsity());
                if (drop == 0) return;
                long[] keys = new long[cols];
                for (int r = 0; r < rows; r++) {
                    int row = r * cols;
                    // Non-negative floats order like their bits; the column in the low half makes the sort stable.
                    for (int j = 0; j < cols; j++) keys[j] = (long) Float.floatToIntBits(score[row + j]) << 32 | j;
                    Arrays.sort(keys);
                    for (int p = 0; p < drop; p++) w[row + (int) keys[p]] = 0f;
                }
            }
            case SparsityPattern.NM nm -> Magnitude.pruneGroups(w, score, size, cols, nm);
        }
    }
}
