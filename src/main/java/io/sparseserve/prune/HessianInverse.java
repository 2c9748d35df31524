package io.sparseserve.prune;

import io.sparseserve.backend.cpu.CpuPool;
import jdk.incubator.vector.DoubleVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The upper Cholesky factor U of the dampened inverse Hessian (Uᵀ U = (H + λI)⁻¹), which is all SparseGPT needs of
 * H⁻¹: its diagonal scores weights and its rows spread each pruning error over the later columns (SparseGPT, Frantar
 * and Alistarh 2023, section 3.2 and Algorithm 1; {@code sparsegpt.py: fasterprune}).
 *
 * <p>The reference computes it as {@code cholesky(cholesky_inverse(cholesky(H)), upper=True)}. The same U comes with
 * one factorization fewer: factor H = V Vᵀ with V upper triangular (Cholesky run from the last row up), then
 * H⁻¹ = V⁻ᵀ V⁻¹ = (V⁻¹)ᵀ (V⁻¹), and V⁻¹ is upper triangular with a positive diagonal, so by uniqueness of the Cholesky
 * factor U = V⁻¹.
 *
 * <p>Before factoring, as the reference does: columns with H_ii = 0 (inputs that never fire) are dead, their H_ii set
 * to 1 (the caller zeroes their weights); then λ = percdamp · mean(diag H) is added to the diagonal. Where the
 * factorization still fails (H not positive definite in floating point) λ is multiplied by 10 and it is tried again,
 * with a warning.
 */
public final class HessianInverse {
    private static final Logger LOG = LoggerFactory.getLogger(HessianInverse.class);
    private static final VectorSpecies<Double> D = DoubleVector.SPECIES_PREFERRED;
    static final int MAX_RETRIES = 6;

    /**
     * @param u       the upper factor, row-major [n, n] in its first n² elements (lower triangle zero)
     * @param dead    columns whose H_ii was 0
     * @param damp    the λ finally added
     * @param retries how many times λ had to be raised
     */
    public record Factor(double[] u, int n, boolean[] dead, double damp, int retries) {
        public double diag(int i) {
            return u[i * n + i];
        }
    }

    private HessianInverse() {}

    /** Factors the dampened inverse of {@code h} ([n, n], left unchanged). */
    public static Factor of(double[] h, int n, double percdamp, String what) {
        return of(h, n, percdamp, what, new Workspace());
    }

    /** The same, in the workspace's arrays: the factor is valid until the next factorization in that workspace. */
    static Factor of(double[] h, int n, double percdamp, String what, Workspace ws) {
        boolean[] dead = new boolean[n];
        double meanDiag = 0;
        for (int i = 0; i < n; i++) {
            double d = h[i * n + i];
            if (d == 0) {
                dead[i] = true;
                d = 1;
            }
            meanDiag += d;
        }
        meanDiag /= n;
        double damp = percdamp * meanDiag;
        double[] a = ws.doubles("factor.a", n * n);
        for (int retry = 0; ; retry++) {
            System.arraycopy(h, 0, a, 0, n * n);
            for (int i = 0; i < n; i++) a[i * n + i] = (dead[i] ? 1 : a[i * n + i]) + damp;
            if (upperCholesky(a, n)) {
                double[] u = invertUpper(a, n, ws.doubles("factor.u", n * n));
                return new Factor(u, n, dead, damp, retry);
            }
            if (retry == MAX_RETRIES) {
                throw new IllegalStateException(what + ": the Hessian is not positive definite even with dampening "
                        + damp + " (" + MAX_RETRIES + " retries); the calibration inputs may hold NaN or infinity");
            }
            double next = damp == 0 ? Math.max(1e-8, 0.01 * meanDiag) : damp * 10;
            LOG.warn("{}: Cholesky factorization failed with dampening {}; retrying with {}", what, damp, next);
            damp = next;
        }
    }

    /**
     * Factors a = V Vᵀ in place, V upper triangular (the upper triangle of {@code a} is read and overwritten, the lower
     * one zeroed). Columns are done from the last to the first; the rows of a column run in parallel. False when a
     * pivot is not positive.
     */
    static boolean upperCholesky(double[] a, int n) {
        CpuPool pool = CpuPool.shared();
        for (int j = n - 1; j >= 0; j--) {
            int row = j * n;
            double s = a[row + j] - dot(a, row + j + 1, a, row + j + 1, n - j - 1);
            if (!(s > 0) || !Double.isFinite(s)) return false;
            double vjj = Math.sqrt(s);
            a[row + j] = vjj;
            final int jj = j;
            // V[i][j] = (A[i][j] - sum_{k>j} V[i][k] V[j][k]) / V[j][j] for i < j.
            RangeBody body = (i0, i1) -> {
                for (int i = i0; i < i1; i++) {
                    int ri = i * n;
                    a[ri + jj] = (a[ri + jj] - dot(a, ri + jj + 1, a, row + jj + 1, n - jj - 1)) / vjj;
                }
            };
            if ((long) j * (n - j) < 1 << 15) body.run(0, j);
            else pool.parallelFor(j, 16, (i0, i1, t) -> body.run(i0, i1));
        }
        for (int i = 1; i < n; i++) java.util.Arrays.fill(a, i * n, i * n + i, 0.0);
        return true;
    }

    /** The inverse of an upper triangular v (positive diagonal) into x, column by column in parallel. */
    static double[] invertUpper(double[] v, int n, double[] x) {
        CpuPool pool = CpuPool.shared();
        pool.parallelFor(n, 8, (j0, j1, t) -> {
            double[] col = new double[n];
            for (int j = j0; j < j1; j++) {
                // Solve V c = e_j; c[i] = 0 for i > j.
                col[j] = 1.0 / v[j * n + j];
                for (int i = j - 1; i >= 0; i--) col[i] = -dot(v, i * n + i + 1, col, i + 1, j - i) / v[i * n + i];
                for (int i = 0; i <= j; i++) x[i * n + j] = col[i];
                for (int i = j + 1; i < n; i++) x[i * n + j] = 0; // x may be a reused array
            }
        });
        return x;
    }

    @FunctionalInterface
    private interface RangeBody {
        void run(int from, int to);
    }

    static double dot(double[] a, int ao, double[] b, int bo, int len) {
        DoubleVector acc = DoubleVector.zero(D);
        int i = 0;
        int bound = D.loopBound(len);
        for (; i < bound; i += D.length()) {
            acc = DoubleVector.fromArray(D, a, ao + i).fma(DoubleVector.fromArray(D, b, bo + i), acc);
        }
        double s = acc.reduceLanes(VectorOperators.ADD);
        for (; i < len; i++) s += a[ao + i] * b[bo + i];
        return s;
    }
}
