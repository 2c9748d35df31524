package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;

/** The Vector API backend: every operation on the shared {@link CpuPool}. */
public final class CpuBackend implements Backend {
    private final CpuMatmul matmul;
    private final CpuKernels kernels;
    private final CpuAttention attention;

    /** maxContext bounds the positions one sequence can attend to (sizes the per-thread score buffers). */
    public CpuBackend(CpuPool pool, int maxContext) {
        this.matmul = new CpuMatmul(pool);
        this.kernels = new CpuKernels(pool);
        this.attention = new CpuAttention(pool, maxContext);
    }

    public CpuBackend(int maxContext) {
        this(CpuPool.shared(), maxContext);
    }

    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias) {
        matmul.matmul(w, x, xOff, tokens, y, yOff, bias);
    }

    @Override
    public void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases) {
        matmul.matmul(ws, count, x, tokens, ys, biases);
    }

    @Override
    public void matmul(WeightMatrix w, float[] x, int xOff, int tokens, float[] y, int yOff, float[] bias,
                       int[] promptRows, int promptCount) {
        matmul.matmul(w, x, xOff, tokens, y, yOff, bias, promptRows, promptCount);
    }

    @Override
    public void matmul(WeightMatrix[] ws, int count, float[] x, int tokens, float[][] ys, float[][] biases,
                       int[] promptRows, int promptCount) {
        matmul.matmul(ws, count, x, tokens, ys, biases, promptRows, promptCount);
    }

    @Override
    public long scratchBytes() {
        return matmul.scratchBytes();
    }

    @Override
    public void rmsNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float eps) {
        kernels.rmsNorm(x, out, tokens, dim, weight, eps);
    }

    @Override
    public void layerNorm(float[] x, float[] out, int tokens, int dim, float[] weight, float[] bias, float eps) {
        kernels.layerNorm(x, out, tokens, dim, weight, bias, eps);
    }

    @Override
    public void rope(float[] x, int tokens, int stride, int heads, int headDim, int[] positions, float[] cos, float[] sin) {
        kernels.rope(x, tokens, stride, heads, headDim, positions, cos, sin);
    }

    @Override
    public void attention(AttentionLayout layout, float[] q, MemorySegment kCache, MemorySegment vCache, KvDtype dtype,
                          float[] out) {
        attention.attend(layout, q, kCache, vCache, dtype, out);
    }

    @Override
    public void siluMul(float[] gate, float[] up, int n) {
        kernels.siluMul(gate, up, n);
    }

    @Override
    public void relu(float[] x, int n) {
        kernels.relu(x, n);
    }

    @Override
    public void add(float[] x, float[] y, int n) {
        kernels.add(x, y, n);
    }
}
