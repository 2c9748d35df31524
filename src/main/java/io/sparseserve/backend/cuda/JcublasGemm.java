package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;
import jcuda.Pointer;
import jcuda.jcublas.JCublas2;
import jcuda.jcublas.cublasHandle;
import jcuda.runtime.cudaStream_t;

/** cuBLAS through JCublas2 (needs libcublas.so.12: CUDA 12 installations). */
public final class JcublasGemm implements Gemm {
    private final cublasHandle handle = new cublasHandle();
    private final Pointer one = Pointer.to(new float[] {1f});
    private final Pointer zero = Pointer.to(new float[] {0f});
    private boolean closed;

    /** Throws LinkageError when JCublas's native library (or libcublas.so.12) does not load. */
    public JcublasGemm(CudaStream stream, DeviceBuffer workspace) {
        CublasStatus.check("cublasCreate", JCublas2.cublasCreate(handle));
        CublasStatus.check("cublasSetStream", JCublas2.cublasSetStream(handle, new cudaStream_t(stream)));
        CublasStatus.check("cublasSetWorkspace", JCublas2.cublasSetWorkspace(handle, workspace.ptr(), workspace.bytes()));
    }

    @Override
    public String name() {
        return "jcublas (libcublas.so.12)";
    }

    @Override
    public void linear(DType dtype, long w, long x, long y, int rows, int cols, int tokens, int ldx, int ldy) {
        GemmArgs a = GemmArgs.linear(dtype, rows, cols, tokens, ldx, ldy);
        CublasStatus.check("cublasGemmEx(" + dtype + " " + tokens + "x" + cols + " by " + rows + ")",
                JCublas2.cublasGemmEx(handle, a.transa(), a.transb(), a.m(), a.n(), a.k(), one, DevicePtr.of(w), a.atype(),
                        a.lda(), DevicePtr.of(x), a.btype(), a.ldb(), zero, DevicePtr.of(y), a.ctype(), a.ldc(),
                        a.computeType(), a.algo()));
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        CublasStatus.check("cublasDestroy", JCublas2.cublasDestroy(handle));
    }
}
