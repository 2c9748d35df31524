package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;

/**
 * The one cuBLAS operation the backend needs, behind JCublas (CUDA 12) or FFM downcalls into libcublas.so.13
 * (CUDA 13): {@code y[t][r] = sum_k x[t][k] · w[r][k]} for row-major weights w [rows][cols] (nn.Linear), activations
 * x [tokens][ldx] in the weights' dtype and float32 output y [tokens][ldy], accumulated in float32. In cuBLAS's
 * column-major terms that is C = op(A)·B with A = w read transposed (lda = cols), B = xᵀ (ldb = ldx), C = yᵀ
 * (ldc = ldy): see {@link GemmArgs}.
 */
public interface Gemm extends AutoCloseable {

    /** "jcublas (libcublas.so.12)" or "ffm (/path/libcublas.so.13)": what serves, for the log. */
    String name();

    /** Enqueues the product on the context's stream. Device addresses; dtype is that of w and x. */
    void linear(DType dtype, long w, long x, long y, int rows, int cols, int tokens, int ldx, int ldy);

    @Override
    void close();
}
