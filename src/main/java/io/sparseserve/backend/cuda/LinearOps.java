package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;

/**
 * One linear layer {@code y[tokens][rows] = x[tokens][cols] · Wᵀ (+ bias)} on the device, by the path its layout
 * takes: up to 16 token rows through the weight's own GEMV kernel (dense, bitmask or 2:4, bias fused); more rows
 * through cuBLAS (activations cast to the weights' 16-bit dtype; a bitmask or 2:4 weight expanded first into a dense
 * scratch matrix); CSR weights through cuSPARSE; a {@link DeviceLinear.PerPhase} weight by its decode layout up to 16
 * rows and its prefill layout above. Used by the forward pass and by the load-time timing of the sparse paths
 * ({@link SparsePathTimer}), so that what is timed is what runs.
 *
 * @param cast a buffer of at least {@code maxTokens · widest · 4} bytes for the cast input of cuBLAS
 * @param denseScratch a buffer for the largest expanded sparse weight, or 0 when none is expanded
 */
record LinearOps(CudaContext ctx, CudaKernels k, Gemm gemm, SparseUploads sparse, long cast, long denseScratch) {

    void linear(DeviceLinear lin, long in, long out, int tokens) {
        switch (lin) {
            case DeviceLinear.PerPhase p -> linear(tokens <= KernelNames.MAX_GEMV_TOKENS ? p.decode() : p.prefill(), in, out, tokens);
            case DeviceLinear.Csr csr -> {
                toDtype(csr.dtype(), in, csr.matrix().inputAddress(), tokens * csr.cols());
                csr.matrix().multiply(tokens, sparse.workspace());
                ctx.copy(out, csr.matrix().outputAddress(), 4L * tokens * csr.rows());
                if (csr.bias() != 0) k.biasAdd(out, csr.bias(), tokens, csr.rows(), csr.rows());
            }
            default -> {
                if (tokens <= KernelNames.MAX_GEMV_TOKENS) {
                    k.gemv(lin, in, out, tokens, lin.cols(), lin.rows());
                    return;
                }
                long dense = switch (lin) {
                    case DeviceLinear.Dense d -> d.w();
                    default -> {
                        if (denseScratch == 0) throw new IllegalStateException("no scratch to expand a " + lin.rows() + "x" + lin.cols() + " weight");
                        k.expand(lin, denseScratch);
                        yield denseScratch;
                    }
                };
                long operand = lin.dtype() == DType.F32 ? in : cast;
                if (lin.dtype() != DType.F32) k.castFromF32(lin.dtype(), in, cast, tokens * lin.cols());
                gemm.linear(lin.dtype(), dense, operand, out, lin.rows(), lin.cols(), tokens, lin.cols(), lin.rows());
                if (lin.bias() != 0) k.biasAdd(out, lin.bias(), tokens, lin.rows(), lin.rows());
            }
        }
    }

    /** Bytes of a dense copy of the weight that prefill expands (its own-kernel layout), or 0. */
    static long expandedBytes(DeviceLinear d) {
        return switch (d) {
            case DeviceLinear.Bitmask b -> (long) b.rows() * b.cols() * b.dtype().bytes();
            case DeviceLinear.Nm24 n -> (long) n.rows() * n.cols() * n.dtype().bytes();
            case DeviceLinear.PerPhase p -> expandedBytes(p.prefill());
            default -> 0;
        };
    }

    /** Copies float32 activations into a buffer of {@code dtype} (a cast, or a plain copy for F32). */
    private void toDtype(DType dtype, long in, long dst, int n) {
        if (dtype == DType.F32) ctx.copy(dst, in, 4L * n);
        else k.castFromF32(dtype, in, dst, n);
    }
}
