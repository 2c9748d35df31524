package io.sparseserve.prune;

import io.sparseserve.backend.cpu.CpuPool;
import java.util.Arrays;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * SparseGPT (Frantar and Alistarh 2023, Algorithm 1), following the reference implementation's {@code fasterprune}
 * (IST-DASLab/sparsegpt, {@code sparsegpt.py}) step for step:
 * <ol>
 *   <li>U = upper Cholesky factor of the dampened H⁻¹ ({@link HessianInverse}); weights of dead columns zeroed;</li>
 *   <li>columns walked in blocks of {@code blocksize}. Unstructured: the mask of a whole block is chosen at its start,
 *       every weight scored w² / U_cc², the scores of the block (all rows) sorted and those at or below the one at
 *       index ⌊numel · S⌋ pruned (the reference's {@code tmp <= thresh}, so ties at the threshold go too). N:M: at
 *       every M-th column each row prunes the M − N lowest scores among its next M columns, scored on the weights as
 *       updated so far;</li>
 *   <li>within the block, column by column: q = w with the masked weights zeroed, err = (w − q) / U_ii, and the
 *       block's later columns get −err ⊗ U[i, i+1:]; after the block, all later columns get −Err · U[block, rest] at
 *       once (the lazy batch update).</li>
 * </ol>
 * Everything after the mask choice is independent per row, so rows run in parallel. Arithmetic is float64 (the
 * reference uses float32). With S = 0 nothing is pruned (the reference's threshold rule would still prune the lowest
 * score of each block).
 */
public final class SparseGpt {
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;

    private SparseGpt() {}

    /** What a run did: the reference's summed loss Σ (w − q)² / U_ii² / 2, and the dampening used. */
    public record Result(double loss, double damp, int dampRetries) {}

    /**
     * Prunes {@code w} ([rows, cols], row-major) in place with the factor of its Hessian. Only the weights change.
     */
    public static Result prune(float[] w, int rows, int cols, HessianInverse.Factor f, SparsityPattern pattern,
                               int blocksize) {
        return prune(w, rows, cols, f, pattern, blocksize, new Workspace());
    }

    static Result prune(float[] w, int rows, int cols, HessianInverse.Factor f, SparsityPattern pattern, int blocksize,
                        Workspace ws) {
        if (f.n() != cols) throw new IllegalArgumentException("Hessian of " + f.n() + " columns for a matrix of " + cols);
        if (blocksize < 1) throw new IllegalArgumentException("blocksize must be >= 1, got " + blocksize);
        if (pattern instanceof SparsityPattern.NM nm && (blocksize % nm.m() != 0 || cols % nm.m() != 0)) {
            throw new IllegalArgumentException("blocksize " + blocksize + " and columns " + cols + " must be multiples of M = "
                    + nm.m());
        }
        double[] u = f.u();
        int size = rows * cols;
        double[] wd = ws.doubles("sparsegpt.w", size);
        for (int i = 0; i < size; i++) wd[i] = w[i];
        for (int c = 0; c < cols; c++) {
            if (f.dead()[c]) for (int r = 0; r < rows; r++) wd[r * cols + c] = 0;
        }
        double[] loss = new double[rows];
        boolean[] mask = ws.booleans("sparsegpt.mask", rows * blocksize);
        double[] err = ws.doubles("sparsegpt.err", rows * blocksize);
        CpuPool pool = CpuPool.shared();
        for (int i1 = 0; i1 < cols; i1 += blocksize) {
            int i2 = Math.min(i1 + blocksize, cols), count = i2 - i1;
            final int b1 = i1;
            if (pattern instanceof SparsityPattern.Unstructured us) {
                unstructuredMask(wd, rows, cols, u, b1, count, us.sparsity(), mask, ws);
            }
            pool.parallelFor(rows, 4, (r0, r1, t) -> {
                for (int r = r0; r < r1; r++) pruneRowBlock(wd, r, cols, u, b1, count, pattern, mask, err, loss);
                lazyUpdate(wd, r0, r1, cols, u, b1, count, err);
            });
        }
        for (int i = 0; i < size; i++) w[i] = (float) wd[i];
        double total = 0;
        for (double l : loss) total += l;
        return new Result(total, f.damp(), f.retries());
    }

    /** mask[r * count + j] for the block's columns: scores at or below the ⌊numel · S⌋-th smallest of the block. */
    static void unstructuredMask(double[] w, int rows, int cols, double[] u, int i1, int count, double sparsity,
                                 boolean[] mask, Workspace ws) {
        int numel = rows * count;
        if (sparsity == 0) {
            Arrays.fill(mask, 0, numel, false);
            return;
        }
        double[] score = ws.doubles("sparsegpt.score", numel);
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < count; j++) {
                double d = u[(i1 + j) * cols + i1 + j];
                double v = w[r * cols + i1 + j];
                score[r * count + j] = v * v / (d * d);
            }
        }
        double[] sorted = ws.doubles("sparsegpt.sorted", numel);
        System.arraycopy(score, 0, sorted, 0, numel);
        Arrays.sort(sorted, 0, numel);
        double thresh = sorted[(int) (numel * sparsity)];
        for (int i = 0; i < numel; i++) mask[i] = score[i] <= thresh;
    }

    /** Columns [i1, i1 + count) of row r: prune, spread each error over the block's later columns, record errors. */
    private static void pruneRowBlock(double[] w, int r, int cols, double[] u, int i1, int count, SparsityPattern pattern,
                                      boolean[] mask, double[] err, double[] loss) {
        int row = r * cols, mrow = r * count;
        SparsityPattern.NM nm = pattern instanceof SparsityPattern.NM p ? p : null;
        double rowLoss = 0;
        for (int j = 0; j < count; j++) {
            int i = i1 + j;
            if (nm != null && j % nm.m() == 0) nmMask(w, row, u, cols, i, nm, mask, mrow + j);
            double wi = w[row + i];
            double q = mask[mrow + j] ? 0 : wi;
            double d = u[i * cols + i];
            double e = (wi - q) / d;
            rowLoss += (wi - q) * (wi - q) / (d * d) / 2;
            w[row + i] = q;
            if (e != 0) axpy(-e, u, i * cols + i + 1, w, row + i + 1, count - j - 1);
            err[mrow + j] = e;
        }
        loss[r] += rowLoss;
    }

    /** At column i (a group start), marks the M − N lowest w² / U_cc² of columns [i, i + M) of the row. */
    private static void nmMask(double[] w, int row, double[] u, int cols, int i, SparsityPattern.NM nm, boolean[] mask, int at) {
        int m = nm.m();
        double[] score = new double[m];
        for (int k = 0; k < m; k++) {
            double d = u[(i + k) * cols + i + k];
            double v = w[row + i + k];
            score[k] = v * v / (d * d);
            mask[at + k] = false;
        }
        for (int p = 0; p < m - nm.n(); p++) {
            int best = -1;
            for (int k = 0; k < m; k++) if (!mask[at + k] && (best < 0 || score[k] < score[best])) best = k;
            mask[at + best] = true;
        }
    }

    /** W[r, i1 + count:] -= Err[r, :] · U[i1:i1 + count, i1 + count:] for rows [r0, r1). */
    private static void lazyUpdate(double[] w, int r0, int r1, int cols, double[] u, int i1, int count, double[] err) {
        int i2 = i1 + count;
        if (i2 >= cols) return;
        for (int r = r0; r < r1; r++) {
            int row = r * cols;
            for (int k = 0; k < count; k++) {
                double e = err[r * count + k];
                if (e != 0) axpy(-e, u, (i1 + k) * cols + i2, w, row + i2, cols - i2);
            }
        }
    }

    /** y[yo..] += a · x[xo..] over len elements. */
    static void axpy(double a, double[] x, int xo, double[] y, int yo, int len) {
        DoubleVector av = DoubleVector.broadcast(D, a);
        int i = 0;
        int bound = D.loopBound(len);
        for (; i < bound; i += D.length()) {
            DoubleVector.fromArray(D, x, xo + i).fma(av, DoubleVector.fromArray(D, y, yo + i)).intoArray(y, yo + i);
        }
        for (; i < len; i++) y[yo + i] += a * x[xo + i];
    }
}
