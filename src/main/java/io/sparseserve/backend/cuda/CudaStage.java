package io.sparseserve.backend.cuda;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.model.Model;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import jcuda.driver.CUevent;

/**
 * One stage of the CUDA runner: decoder layers [first, end) of the model on one device, with their weights, their KV
 * blocks, the activations of a step and its own stream (its {@link CudaContext}). Without a layer split the one stage
 * holds everything; with one ({@code --device cuda:0,1}), the first stage also holds the embeddings, the last the
 * head, and a step runs the stages in order, the residual stream copied from each to the next
 * ({@link CudaContext#copyTo}) and each stream waiting for the previous one's event ({@link #done()}).
 */
final class CudaStage implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CudaStage.class);
    final int index;
    final CudaContext ctx;
    final int first;
    final int end;
    final Gemm gemm;
    final SparseUploads uploads;
    final DeviceModel weights;
    final CudaForward forward;
    private final Map<Integer, CudaGraph> graphs = new HashMap<>();
    private PinnedBuffer hostInputs;
    private CUevent done;

    /** Uploads the stage's weights and allocates its workspace and activations; KV blocks come later ({@link #allocate}). */
    /**
     * @param choices the {@code --sparse-kernel auto} choices already made on this stage's device (by an earlier stage
     *        of {@code cuda:0,0}); shapes timed here are added, so stages on one device lay out one shape alike
     */
    CudaStage(int index, CudaContext ctx, CudaLibraries libs, Model model, RunnerConfig config, int first, int end,
              KvDtype kvDtype, SparseKernel sparse, List<SparsePathChoice.Choice> choices) {
        this.index = index;
        this.ctx = ctx;
        this.first = first;
        this.end = end;
        ctx.makeCurrent();
        var c = model.config();
        Gemm g = Gemms.open(ctx, libs);
        SparseUploads u = null;
        DeviceModel w = null;
        try {
            CudaKernels kernels = new CudaKernels(ctx, ctx.loadModule(Fatbin.load()));
            SparsePaths paths = sparse == SparseKernel.AUTO
                    ? SparsePaths.chosen(timeSparsePaths(ctx, kernels, g, libs, model, config, first, end, choices))
                    : SparsePaths.of(sparse);
            u = new SparseUploads(ctx, libs, config.maxStepTokens(),
                    Math.max(Math.max(c.hidden(), c.intermediate()), Math.max(c.qDim(), c.kvDim())));
            w = new DeviceModel(ctx, model.weights(), first, end, paths, u);
            u.finish(1, config.maxStepTokens());
            this.forward = new CudaForward(ctx, kernels, g, w, c, config, kvDtype, u);
        } catch (RuntimeException e) {
            if (w != null) w.close();
            if (u != null) u.close();
            g.close();
            throw e;
        }
        this.gemm = g;
        this.uploads = u;
        this.weights = w;
    }

    /** Tokens a prefill product is timed at: a long prompt chunk, at most the runner's step. */
    static final int PREFILL_TIMING_TOKENS = 512;

    /**
     * {@code --sparse-kernel auto}: times every path on each sparse shape of layers [first, end) not already in
     * {@code choices} (one real weight per shape), chooses ({@link SparsePathChoice}) and returns all choices of the
     * device. Prefill is timed only when a step can carry more rows than the GEMV kernels take.
     */
    private static List<SparsePathChoice.Choice> timeSparsePaths(CudaContext ctx, CudaKernels kernels, Gemm gemm, CudaLibraries libs,
                                                                 Model model, RunnerConfig config, int first, int end,
                                                                 List<SparsePathChoice.Choice> choices) {
        Map<SparsePathChoice.Shape, io.sparseserve.tensor.WeightMatrix> todo = new java.util.LinkedHashMap<>();
        java.util.Set<SparsePathChoice.Shape> known = new java.util.HashSet<>();
        for (SparsePathChoice.Choice ch : choices) known.add(ch.shape());
        for (var layer : model.weights().layers().subList(first, end)) {
            for (var lin : layer.linears()) {
                SparsePathChoice.Shape shape = SparsePaths.shapeOf(lin.weight());
                if (shape != null && !known.contains(shape)) todo.putIfAbsent(shape, lin.weight());
            }
        }
        if (todo.isEmpty()) return choices;
        Map<SparsePathChoice.Phase, Integer> tokens = new java.util.EnumMap<>(SparsePathChoice.Phase.class);
        tokens.put(SparsePathChoice.Phase.DECODE, 1);
        if (config.maxStepTokens() > KernelNames.MAX_GEMV_TOKENS) {
            tokens.put(SparsePathChoice.Phase.PREFILL, Math.min(config.maxStepTokens(), PREFILL_TIMING_TOKENS));
        }
        long t0 = System.nanoTime();
        try (CudaPathProber prober = new CudaPathProber(ctx, kernels, gemm, libs, todo, config.maxStepTokens())) {
            var timings = SparsePathTimer.measure(List.copyOf(todo.keySet()), tokens, prober, 2, 5);
            List<SparsePathChoice.Choice> made = SparsePathChoice.chooseAll(SparseKernel.AUTO, timings);
            for (String line : SparsePathTimer.describe(made)) log.info("--sparse-kernel auto on {}: {}", ctx.info(), line);
            choices.addAll(made);
        }
        log.info("--sparse-kernel auto: {} shapes timed in {} ms", todo.size(), (System.nanoTime() - t0) / 1_000_000);
        return choices;
    }

    /** KV blocks for its layers, the step-input buffers, and the event the next stage waits on. */
    void allocate(int kvBlocks, StepPacking packing, boolean last) {
        ctx.makeCurrent();
        forward.allocateKv(kvBlocks, packing);
        hostInputs = ctx.pinned(4L * packing.ints());
        if (!last) done = ctx.newEvent();
    }

    /** Enqueues the step's packed inputs (ids, positions, slots, block tables) for this stage's kernels. */
    void upload(StepPacking packing) {
        hostInputs.view().asIntBuffer().put(0, packing.data(), 0, packing.ints());
        ctx.uploadAsync(hostInputs, 0, forward.inputs().address(), 4L * packing.ints());
    }

    /**
     * Enqueues the stage's part of the step: a decode step of bucket size {@code bucket} > 0 through its graph
     * (captured at the bucket's first step, after one direct run), anything else directly.
     */
    void run(int tokens, boolean decode, int headRows, int bucket) {
        if (bucket <= 0) {
            forward.step(tokens, decode, headRows);
            return;
        }
        CudaGraph graph = graphs.get(bucket);
        if (graph == null) {
            // First step of this bucket: run it directly (functions are looked up, libraries warm up outside any
            // capture), then capture the same launches for the next steps; capturing runs nothing.
            forward.step(bucket, true, bucket);
            graphs.put(bucket, ctx.capture(() -> forward.step(bucket, true, bucket)));
        } else {
            graph.launch();
        }
    }

    /** Hands the residual stream of {@code tokens} rows to {@code next} and marks the point {@code next} waits for. */
    void handTo(CudaStage next, int tokens, int hidden) {
        ctx.copyTo(next.ctx, next.forward.residual(), forward.residual(), 4L * tokens * hidden);
        ctx.record(done);
    }

    CUevent done() {
        return done;
    }

    int graphCount() {
        return graphs.size();
    }

    @Override
    public void close() {
        ctx.makeCurrent();
        ctx.synchronize();
        for (CudaGraph g : graphs.values()) g.close();
        graphs.clear();
        forward.close();
        weights.close();
        gemm.close();
        if (hostInputs != null) hostInputs.close();
        if (done != null) ctx.destroy(done);
    }
}
