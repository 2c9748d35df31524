package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;
import java.util.Locale;

/**
 * Which path multiplies a sparse (bitmask or 2:4) matrix on a GPU ({@code --sparse-kernel}): {@code auto} times each
 * path on each matrix shape once at load and keeps the fastest ({@code backend.cuda.SparsePathChoice}); the others
 * force one. The CPU has one sparse kernel and ignores it.
 */
public enum SparseKernel {
    /** The fastest of the measured paths, per matrix shape. */
    AUTO,
    /** Our kernels, reading only the kept values and the mask bits. */
    OWN,
    /** cuSPARSE SpMV/SpMM over a CSR built from the bitmask at load. */
    CUSPARSE,
    /** The matrix expanded to dense at load (cuBLAS / dense GEMV): the baseline. */
    DENSE;

    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    public static SparseKernel parse(String s) {
        for (SparseKernel k : values()) if (k.label().equals(s)) return k;
        throw new InvalidInputException("--sparse-kernel must be auto, own, cusparse or dense, got '" + s + "'");
    }
}
