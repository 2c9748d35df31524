package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.DeviceUnavailableException;
import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.MemoryUse;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import java.nio.IntBuffer;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA runner: one model on one GPU. Weights are uploaded once ({@link DeviceModel}), activations and KV blocks
 * are allocated up front, and a step runs the forward pass of {@code backend.cpu.Transformer} as kernel launches on
 * the context's one stream ({@link CudaForward}); decode steps are captured as CUDA graphs per batch-size bucket
 * ({@link GraphBuckets}) and replayed. Only the rows the step asks for come back: logits rows, or one id per greedy
 * sequence.
 *
 * <p>Not yet run on a GPU (this build's machines have none): native/gpu-check.sh is its test.
 */
public final class CudaModelRunner implements ModelRunner {
    private static final Logger log = LoggerFactory.getLogger(CudaModelRunner.class);

    private final Device device;
    private final ModelConfig c;
    private final RunnerConfig config;
    private final KvDtype kvDtype;
    private final CudaContext ctx;
    private final Gemm gemm;
    private final DeviceModel weights;
    private final CudaForward forward;
    private final StepPacking packing;
    private final GraphBuckets buckets;
    private final Map<Integer, CudaGraph> graphs = new HashMap<>();
    private final PinnedBuffer hostInputs;
    private final PinnedBuffer hostLogits;
    private final PinnedBuffer hostArgmax;
    private final int kvBlocks;
    private final Map<String, Object> facts = new LinkedHashMap<>();
    private final boolean useGraphs = !Boolean.getBoolean("sparseserve.cuda.noGraphs");
    private boolean closed;

    private CudaModelRunner(Device device, DeviceOptions options, Model model, RunnerConfig config, CudaContext ctx) {
        this.device = device;
        this.c = model.config();
        this.config = config;
        this.ctx = ctx;
        this.kvDtype = options.kvDtypeFor(device);
        long[] info = ctx.memory().info();
        long freeAtStart = info[0], total = info[1];
        CudaLibraries libs = CudaLibraries.fromEnvironment();
        log.info("CUDA library folders: {}", libs.directories());
        this.gemm = Gemms.open(ctx, libs);
        SparseKernel sparse = options.sparseKernel();
        SparseUploads uploads = new SparseUploads(ctx, libs, config.maxStepTokens(),
                Math.max(Math.max(c.hidden(), c.intermediate()), Math.max(c.qDim(), c.kvDim())));
        this.weights = new DeviceModel(ctx, model.weights(), sparse, uploads);
        uploads.finish(1, config.maxStepTokens());
        this.forward = new CudaForward(ctx, new CudaKernels(ctx, ctx.loadModule(Fatbin.load())), gemm, weights, c, config,
                kvDtype, uploads);
        int maxBlocksPerSeq = KvSizing.blocksFor(c.maxPositions(), config.blockSize());
        this.packing = new StepPacking(config.maxStepTokens(), config.maxStepSequences(), maxBlocksPerSeq, config.blockSize());
        this.buckets = GraphBuckets.upTo(config.maxStepSequences());
        long perBlock = KvSizing.bytesPerBlock(c, config.blockSize(), kvDtype);
        this.kvBlocks = config.kv() instanceof KvCapacity.Auto
                ? KvSizing.gpuBlocks(device.toString(), new KvSizing.DeviceBudget(total, freeAtStart, options.gpuMemoryUtilization(),
                        ctx.memory().ledger().used(MemoryKind.WEIGHTS), ctx.memory().ledger().used(MemoryKind.WORKSPACE), 0),
                        perBlock, maxBlocksPerSeq, Integer.MAX_VALUE)
                : KvSizing.exactBlocks(config.kv(), perBlock);
        forward.allocateKv(kvBlocks, packing);
        this.hostInputs = ctx.pinned(4L * packing.ints());
        this.hostLogits = ctx.pinned(4L * config.maxStepTokens() * c.vocab());
        this.hostArgmax = ctx.pinned(4L * config.maxStepTokens());
        facts.put("device", ctx.info().toString());
        facts.put("cublas", gemm.name());
        facts.put("sparse_kernel", sparse.label() + (sparse == SparseKernel.AUTO ? " (own until per-shape timing is wired)" : ""));
        facts.put("kv_blocks", kvBlocks);
        facts.put("kv_dtype", kvDtype.label());
        facts.put("graph_buckets", useGraphs ? buckets.sizes() : new int[0]);
        facts.put("linear_device_bytes", weights.linearBytes());
        facts.put("linear_dense_bytes", weights.linearDenseBytes());
        facts.put("linear_bytes_ratio", (double) weights.linearBytes() / Math.max(1, weights.linearDenseBytes()));
        log.info("CUDA runner: {}", facts);
    }

    /** Opens a runner; every failure to start becomes one line (DeviceUnavailableException), and frees what it took. */
    public static ModelRunner open(Device device, DeviceOptions options, Model model, RunnerConfig config) {
        CudaContext ctx;
        try {
            ctx = CudaContext.open(device.ordinal());
        } catch (CudaUnavailableException e) {
            throw new DeviceUnavailableException(e.getMessage(), e);
        }
        try {
            return new CudaModelRunner(device, options, model, config, ctx);
        } catch (CudaUnavailableException | DeviceOutOfMemoryException e) {
            ctx.close();
            throw new DeviceUnavailableException("--device " + device + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            ctx.close();
            throw e;
        }
    }

    @Override
    public String device() {
        return device.toString();
    }

    @Override
    public ModelConfig config() {
        return c;
    }

    @Override
    public RunnerConfig runnerConfig() {
        return config;
    }

    @Override
    public int kvBlocks() {
        return kvBlocks;
    }

    @Override
    public KvDtype kvDtype() {
        return kvDtype;
    }

    @Override
    public void forward(Step step, float[] logits, int[] argmax) {
        if (closed) throw new IllegalStateException("runner closed");
        step.check(config.maxStepTokens(), config.maxStepSequences(), config.blockSize(), kvBlocks);
        try {
            ctx.makeCurrent();
            boolean decode = StepPacking.isDecode(step);
            int bucket = decode && useGraphs ? buckets.bucketFor(step.tokens()) : -1;
            int padded = bucket > 0 ? bucket : step.tokens();
            packing.pack(step, padded);
            IntBuffer in = hostInputs.view().asIntBuffer();
            in.put(0, packing.data(), 0, packing.ints());
            ctx.uploadAsync(hostInputs, 0, forward.inputs().address(), 4L * packing.ints());
            int headRows = bucket > 0 ? padded : packing.logitRows() + packing.argmaxRows();
            if (bucket > 0) {
                CudaGraph graph = graphs.get(bucket);
                if (graph == null) {
                    // First step of this bucket: run it directly (functions are looked up, libraries warm up outside
                    // any capture), then capture the same launches for the next steps; capturing runs nothing.
                    forward.step(bucket, true, bucket);
                    graphs.put(bucket, ctx.capture(() -> forward.step(bucket, true, bucket)));
                } else {
                    graph.launch();
                }
            } else {
                forward.step(step.tokens(), decode, headRows);
            }
            int rows = packing.logitRows(), picks = packing.argmaxRows();
            if (rows > 0) ctx.downloadAsync(forward.logits().address(), hostLogits, 0, 4L * rows * c.vocab());
            if (picks > 0) ctx.downloadAsync(forward.argmax().address() + 4L * rows, hostArgmax, 0, 4L * picks);
            ctx.synchronize();
            if (rows > 0) hostLogits.view().asFloatBuffer().get(0, logits, 0, rows * c.vocab());
            if (picks > 0) {
                IntBuffer ids = hostArgmax.view().asIntBuffer();
                int i = 0;
                for (int s = 0; s < step.sequences(); s++) if (step.output(s) == Step.Output.LAST_ARGMAX) argmax[s] = ids.get(i++);
            }
        } catch (CudaException e) {
            if (e.sticky()) throw new DeviceFailure("--device " + device + ": " + e.getMessage(), e);
            throw e;
        }
    }

    @Override
    public MemoryUse memory() {
        MemoryLedger l = ctx.memory().ledger();
        return new MemoryUse(l.used(MemoryKind.WEIGHTS), l.used(MemoryKind.KV), l.used(MemoryKind.WORKSPACE), ctx.info().totalMemory());
    }

    @Override
    public Map<String, Object> describe() {
        return facts;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            ctx.makeCurrent();
            ctx.synchronize();
            for (CudaGraph g : graphs.values()) g.close();
            graphs.clear();
            forward.close();
            weights.close();
            gemm.close();
            hostInputs.close();
            hostLogits.close();
            hostArgmax.close();
        } finally {
            ctx.close();
        }
    }
}
