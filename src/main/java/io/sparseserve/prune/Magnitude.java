package io.sparseserve.prune;

import java.util.Arrays;

/**
 * Magnitude pruning, the baseline of the SparseGPT paper: unstructured, one threshold per matrix, every weight with
 * |w| at or below the ⌊numel · S⌋-th smallest magnitude removed, ties included (the reference's {@code --gmp}:
 * {@code W[abs(W) <= thresh] = 0}), so a matrix of rounded BF16 values ends slightly above S; N:M, the M − N smallest
 * magnitudes of each group of M in a row, the first ones on ties. S = 0 removes nothing.
 */
public final class Magnitude {
    private Magnitude() {}

    /** Prunes the first rows · cols elements of {@code w} (row-major) in place. */
    public static void prune(float[] w, int rows, int cols, SparsityPattern pattern) {
        prune(w, rows, cols, pattern, new Workspace());
    }

    static void prune(float[] w, int rows, int cols, SparsityPattern pattern, Workspace ws) {
        int n = rows * cols;
        switch (pattern) {
            case SparsityPattern.Unstructured u -> {
                if (u.sparsity() == 0) return;
                float[] sorted = ws.floats("magnitude.sorted", n);
                for (int i = 0; i < n; i++) sorted[i] = Math.abs(w[i]);
                Arrays.sort(sorted, 0, n);
                float thresh = sorted[(int) (n * u.sparsity())];
                for (int i = 0; i < n; i++) if (Math.abs(w[i]) <= thresh) w[i] = 0f;
            }
            case SparsityPattern.NM nm -> {
                float[] score = ws.floats("magnitude.score", n);
                for (int i = 0; i < n; i++) score[i] = Math.abs(w[i]);
                pruneGroups(w, score, n, cols, nm);
            }
        }
    }

    /**
     * Zeroes, in each group of M consecutive columns of each row of the first n elements, the M − N weights of lowest
     * score (first on ties).
     */
    static void pruneGroups(float[] w, float[] score, int n, int cols, SparsityPattern.NM nm) {
        int m = nm.m(), drop = m - nm.n();
        if (cols % m != 0) throw new IllegalArgumentException("columns " + cols + " are not a multiple of M = " + m);
        boolean[] gone = new boolean[m];
        for (int g = 0; g < n; g += m) {
            Arrays.fill(gone, false);
            for (int p = 0; p < drop; p++) {
                int best = -1;
                for (int k = 0; k < m; k++) if (!gone[k] && (best < 0 || score[g + k] < score[g + best])) best = k;
                gone[best] = true;
                w[g + best] = 0f;
            }
        }
    }
}
