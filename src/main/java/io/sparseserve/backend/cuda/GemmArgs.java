package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;

/**
 * The arguments of cublasGemmEx for {@link Gemm#linear}, computed once here for both implementations (and tested):
 * row-major y = x·wᵀ is column-major yᵀ = w·xᵀ, where the row-major w [rows][cols] is read by cuBLAS as a
 * column-major [cols][rows] matrix and transposed.
 */
public record GemmArgs(int transa, int transb, int m, int n, int k, int atype, int lda, int btype, int ldb, int ctype,
                       int ldc, int computeType, int algo) {
    // cublas_api.h / library_types.h values.
    public static final int CUBLAS_OP_N = 0;
    public static final int CUBLAS_OP_T = 1;
    public static final int CUDA_R_32F = 0;
    public static final int CUDA_R_16F = 2;
    public static final int CUDA_R_16BF = 14;
    public static final int CUBLAS_COMPUTE_32F = 68;
    public static final int CUBLAS_GEMM_DEFAULT = -1;

    public static int cudaDataType(DType dtype) {
        return switch (dtype) {
            case F32 -> CUDA_R_32F;
            case F16 -> CUDA_R_16F;
            case BF16 -> CUDA_R_16BF;
            default -> throw new IllegalArgumentException("cuBLAS GEMM takes F32, F16 or BF16 operands, not " + dtype);
        };
    }

    public static GemmArgs linear(DType dtype, int rows, int cols, int tokens, int ldx, int ldy) {
        if (rows < 1 || cols < 1 || tokens < 1) throw new IllegalArgumentException("GEMM of " + tokens + " x " + cols + " by " + rows);
        if (ldx < cols) throw new IllegalArgumentException("ldx " + ldx + " < cols " + cols);
        if (ldy < rows) throw new IllegalArgumentException("ldy " + ldy + " < rows " + rows);
        int t = cudaDataType(dtype);
        // CUBLAS_COMPUTE_32F for every dtype: float32 accumulation as the CPU backend (F32 x F32 then does not use
        // TF32, whose 10-bit mantissa would break the 1e-2 logits check on F32 models).
        return new GemmArgs(CUBLAS_OP_T, CUBLAS_OP_N, rows, tokens, cols, t, cols, t, ldx, CUDA_R_32F, ldy,
                CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
}
