package io.sparseserve.backend.cuda;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import jcuda.jcusparse.cusparseHandle;

/**
 * The sparse layouts {@link DeviceModel} does not make itself: CSR for the {@code cusparse} path (with one cuSPARSE
 * handle on the context's stream, an input buffer in the weights' dtype, a float32 output buffer and a workspace
 * shared by every CSR matrix), and dense expansion on the host for the {@code dense} path and for N:M patterns other
 * than 2:4, which have no kernel of their own.
 */
final class SparseUploads implements DeviceModel.SparseUploader {
    private final CudaContext ctx;
    private final CudaLibraries libs;
    private final int maxTokens;
    private final int maxWidth;
    private final List<CusparseMatrix> matrices = new ArrayList<>();
    private final List<DeviceBuffer> scratch = new ArrayList<>();
    private cusparseHandle handle;
    private DeviceBuffer input;
    private DeviceBuffer output;
    private DeviceBuffer workspace;

    /** @param maxWidth the widest linear dimension of the model (rows or columns) */
    SparseUploads(CudaContext ctx, CudaLibraries libs, int maxTokens, int maxWidth) {
        this.ctx = ctx;
        this.libs = libs;
        this.maxTokens = maxTokens;
        this.maxWidth = maxWidth;
    }

    @Override
    public DeviceLinear upload(DeviceModel model, WeightMatrix m, long bias, SparseKernel sparse, String what) {
        if (sparse == SparseKernel.CUSPARSE && m instanceof MaskedMatrix masked) return csr(model, masked, bias, what);
        // dense path, or a pattern without kernels: expand once on the host, upload as dense
        float[] full = new float[Math.multiplyExact(m.rows(), m.cols())];
        m.decode(0, m.rows(), 0, m.cols(), full, 0);
        DenseMatrix d = DenseMatrix.fromFloats(full, m.rows(), m.cols(), m.dtype());
        return new DeviceLinear.Dense(d.rows(), d.cols(), d.dtype(), model.upload(d.data(), what + " (expanded)"), bias, d.bytes());
    }

    private DeviceLinear csr(DeviceModel model, MaskedMatrix m, long bias, String what) {
        if (handle == null) handle = Cusparse.open(ctx, libs);
        ensureScratch(m);
        CsrLayout csr = CsrLayout.of(m);
        long rowPtr = model.upload(MemorySegment.ofArray(csr.rowPtr()), what + " CSR row pointers");
        long colInd = model.upload(MemorySegment.ofArray(csr.colInd()), what + " CSR columns");
        long values = model.upload(csr.values(), what + " CSR values");
        CusparseMatrix cm = new CusparseMatrix(handle, m.rows(), m.cols(), csr.nnz(), m.dtype(), rowPtr, colInd, values,
                input.address(), output.address());
        matrices.add(cm);
        return new DeviceLinear.Csr(m.rows(), m.cols(), m.dtype(), cm, bias, csr.bytes());
    }

    /** Input and output buffers for the widest linear at the largest step, allocated with the first CSR matrix. */
    private void ensureScratch(MaskedMatrix m) {
        if (m.rows() > maxWidth || m.cols() > maxWidth) throw new IllegalArgumentException(m.rows() + "x" + m.cols() + " is wider than " + maxWidth);
        if (input != null) return;
        input = ctx.memory().allocate(MemoryKind.WORKSPACE, (long) maxTokens * maxWidth * 4, "cuSPARSE input");
        output = ctx.memory().allocate(MemoryKind.WORKSPACE, (long) maxTokens * maxWidth * 4, "cuSPARSE output");
        scratch.add(input);
        scratch.add(output);
    }

    /**
     * Sizes and allocates the shared cuSPARSE workspace for every matrix at 1 and at {@code tokens} rows (call once
     * after the upload, before any step: nothing is allocated while a graph is captured).
     */
    void finish(int... tokenCounts) {
        if (matrices.isEmpty()) return;
        long need = 256;
        for (CusparseMatrix cm : matrices) for (int t : tokenCounts) need = Math.max(need, cm.workspaceBytes(t));
        workspace = ctx.memory().allocate(MemoryKind.WORKSPACE, need, "cuSPARSE workspace");
        scratch.add(workspace);
    }

    long input() {
        return input.address();
    }

    long output() {
        return output.address();
    }

    long workspace() {
        return workspace.address();
    }

    void close() {
        for (CusparseMatrix cm : matrices) cm.close();
        matrices.clear();
        if (handle != null) Cusparse.check("cusparseDestroy", jcuda.jcusparse.JCusparse.cusparseDestroy(handle));
        for (DeviceBuffer b : scratch) ctx.memory().free(b);
        scratch.clear();
    }
}
