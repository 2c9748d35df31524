package io.sparseserve.backend.cuda;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.backend.cuda.SparsePathChoice.Shape;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.WeightMatrix;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@link SparsePathTimer}'s device side: lays out one real weight of each shape in a path's layout (through the same
 * {@link DeviceModel#layout} and {@link SparseUploads} as the load) and times one product through the same
 * {@link LinearOps} as the forward pass, on random float32 activations, with the stream's events.
 */
final class CudaPathProber implements SparsePathTimer.Prober, AutoCloseable {
    private final CudaContext ctx;
    private final CudaKernels kernels;
    private final Gemm gemm;
    private final CudaLibraries libs;
    private final Map<Shape, WeightMatrix> matrices;
    private final int maxTokens;
    private final int maxWidth;
    private final List<DeviceBuffer> held = new ArrayList<>();
    private final long in;
    private final long out;
    private final long cast;
    private final long denseScratch;

    /** @param matrices one real weight per shape to time */
    CudaPathProber(CudaContext ctx, CudaKernels kernels, Gemm gemm, CudaLibraries libs, Map<Shape, WeightMatrix> matrices,
                   int maxTokens) {
        this.ctx = ctx;
        this.kernels = kernels;
        this.gemm = gemm;
        this.libs = libs;
        this.matrices = matrices;
        this.maxTokens = maxTokens;
        int width = 1;
        long largest = 256;
        for (WeightMatrix m : matrices.values()) {
            width = Math.max(width, Math.max(m.rows(), m.cols()));
            largest = Math.max(largest, (long) m.rows() * m.cols() * m.dtype().bytes());
        }
        this.maxWidth = width;
        long activations = 4L * maxTokens * width;
        in = hold(activations, "sparse path timing input");
        out = hold(activations, "sparse path timing output");
        cast = hold(activations, "sparse path timing cast");
        denseScratch = hold(largest, "sparse path timing expansion");
        DeviceCalibration.fillRandom(ctx, held.getFirst(), DType.F32);
    }

    private long hold(long bytes, String what) {
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WORKSPACE, bytes, what);
        held.add(b);
        return b.address();
    }

    @Override
    public SparsePathTimer.Probe prepare(Shape shape, SparseKernel kernel) {
        WeightMatrix m = matrices.get(shape);
        DeviceModel scratch = new DeviceModel(ctx);
        SparseUploads uploads = new SparseUploads(ctx, libs, maxTokens, maxWidth);
        try {
            DeviceLinear lin = scratch.layout(m, 0, kernel, uploads, "timing " + kernel.label() + " " + shape.rows() + "x" + shape.cols());
            uploads.finish(1, Math.min(maxTokens, CudaStage.PREFILL_TIMING_TOKENS), maxTokens);
            LinearOps ops = new LinearOps(ctx, kernels, gemm, uploads, cast, denseScratch);
            return new SparsePathTimer.Probe() {
                @Override
                public long deviceBytes() {
                    return lin.bytes();
                }

                @Override
                public double seconds(int tokens) {
                    return ctx.time(() -> ops.linear(lin, in, out, tokens)) / 1e3;
                }

                @Override
                public void close() {
                    ctx.synchronize();
                    uploads.close();
                    scratch.close();
                }
            };
        } catch (RuntimeException e) {
            uploads.close();
            scratch.close();
            throw e;
        }
    }

    @Override
    public void close() {
        for (DeviceBuffer b : held) ctx.memory().free(b);
        held.clear();
    }
}
