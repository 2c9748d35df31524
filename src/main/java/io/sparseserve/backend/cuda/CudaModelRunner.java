package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.DeviceUnavailableException;
import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.LayerSplit;
import io.sparseserve.backend.MemoryUse;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import java.nio.IntBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA runner: one model on one GPU, or split by layers over several ({@code --device cuda:0,1}, issue 12), behind
 * one {@link ModelRunner}: one scheduler, one block table per sequence, the same steps. Each {@link CudaStage} holds its
 * layer range's weights (uploaded once, compressed ones stay compressed) and KV blocks on its device, with activations
 * allocated up front; a step runs the forward pass of {@code backend.cpu.Transformer} as kernel launches stage by stage
 * ({@link CudaForward}), the residual stream hopping from each stage to the next (a peer copy, or a device-to-device
 * copy when both stages are on one device, as in {@code cuda:0,0}); decode steps are captured as CUDA graphs per
 * batch-size bucket ({@link GraphBuckets}) and replayed, one graph per stage. Only the rows the step asks for come
 * back: logits rows, or one id per greedy sequence.
 *
 * <p>A split adds memory (a model larger than one GPU), not speed: the stages run one after another.
 *
 * <p>Not yet run on a GPU (this build's machines have none): native/gpu-check.sh is its test.
 */
public final class CudaModelRunner implements ModelRunner {
    private static final Logger log = LoggerFactory.getLogger(CudaModelRunner.class);

    private final Device device;
    private final ModelConfig c;
    private final RunnerConfig config;
    private final KvDtype kvDtype;
    private final List<CudaStage> stages;
    private final StepPacking packing;
    private final GraphBuckets buckets;
    private final PinnedBuffer hostLogits;
    private final PinnedBuffer hostArgmax;
    private final int kvBlocks;
    private final long totalMemory;
    private final Map<String, Object> facts = new LinkedHashMap<>();
    private final boolean useGraphs = !Boolean.getBoolean("sparseserve.cuda.noGraphs");
    private boolean closed;
    /** A sticky error was seen: every later CUDA call fails the same way, so close frees nothing (the process exits). */
    private volatile boolean lost;

    private CudaModelRunner(Device device, DeviceOptions options, Model model, RunnerConfig config, LayerSplit split,
                            List<CudaContext> contexts, Map<Integer, long[]> memoryAtStart, List<CudaStage> stages) {
        this.device = device;
        this.c = model.config();
        this.config = config;
        this.kvDtype = options.kvDtypeFor(device);
        this.stages = stages;
        CudaLibraries libs = CudaLibraries.fromEnvironment();
        log.info("CUDA library folders: {}", libs.directories());
        SparseKernel sparse = options.sparseKernel();
        Map<Integer, List<SparsePathChoice.Choice>> choices = new HashMap<>(); // per device: stages on one device agree
        for (int i = 0; i < split.stages(); i++) {
            List<SparsePathChoice.Choice> onDevice = choices.computeIfAbsent(contexts.get(i).info().ordinal(), o -> new ArrayList<>());
            stages.add(new CudaStage(i, contexts.get(i), libs, model, config, split.start(i), split.end(i), kvDtype, sparse, onDevice));
        }
        boolean peer = true;
        for (int i = 0; i + 1 < stages.size(); i++) {
            CudaContext a = stages.get(i).ctx, b = stages.get(i + 1).ctx;
            peer &= a.enablePeerAccess(b) & b.enablePeerAccess(a);
        }
        int maxBlocksPerSeq = KvSizing.blocksFor(c.maxPositions(), config.blockSize());
        this.packing = new StepPacking(config.maxStepTokens(), config.maxStepSequences(), maxBlocksPerSeq, config.blockSize());
        this.buckets = GraphBuckets.upTo(config.maxStepSequences());
        List<KvSizing.StageMemory> sizing = new ArrayList<>();
        long total = 0;
        for (CudaStage s : stages) {
            long[] info = memoryAtStart.get(s.ctx.info().ordinal());
            MemoryLedger l = s.ctx.memory().ledger();
            sizing.add(new KvSizing.StageMemory(s.ctx.info().ordinal(), s.end - s.first, info[1], info[0],
                    l.used(MemoryKind.WEIGHTS), l.used(MemoryKind.WORKSPACE)));
        }
        for (long[] info : memoryAtStart.values()) total += info[1];
        this.totalMemory = total;
        this.kvBlocks = config.kv() instanceof KvCapacity.Auto
                ? KvSizing.stageBlocks(sizing, options.gpuMemoryUtilization(), c, config.blockSize(), kvDtype, maxBlocksPerSeq,
                        Integer.MAX_VALUE)
                : KvSizing.exactBlocks(config.kv(), KvSizing.bytesPerBlock(c, config.blockSize(), kvDtype));
        for (int i = 0; i < stages.size(); i++) stages.get(i).allocate(kvBlocks, packing, i == stages.size() - 1);
        CudaStage last = stages.getLast();
        last.ctx.makeCurrent();
        this.hostLogits = last.ctx.pinned(4L * config.maxStepTokens() * c.vocab());
        this.hostArgmax = last.ctx.pinned(4L * config.maxStepTokens());

        CudaStage first = stages.getFirst();
        facts.put("device", stages.size() == 1 ? first.ctx.info().toString() : device.toString());
        if (stages.size() > 1) {
            facts.put("layer_split", split.toString());
            facts.put("stages", StageLayout.describe(device, split));
            facts.put("stage_hop", peer ? "peer (direct)" : "peer (through host memory: no peer access between the devices)");
        }
        facts.put("cublas", first.gemm.name());
        facts.put("sparse_kernel", sparse.label());
        if (sparse == SparseKernel.AUTO) {
            List<SparsePathChoice.Choice> all = new ArrayList<>();
            for (List<SparsePathChoice.Choice> l : choices.values()) all.addAll(l);
            facts.put("sparse_choices", all.isEmpty() ? List.of("no sparse matrices") : SparsePathTimer.describe(all));
        }
        facts.put("kv_blocks", kvBlocks);
        facts.put("kv_dtype", kvDtype.label());
        facts.put("graph_buckets", useGraphs ? buckets.sizes() : new int[0]);
        long linear = 0, linearDense = 0;
        for (CudaStage s : stages) {
            linear += s.weights.linearBytes();
            linearDense += s.weights.linearDenseBytes();
        }
        facts.put("linear_device_bytes", linear);
        facts.put("linear_dense_bytes", linearDense);
        facts.put("linear_bytes_ratio", (double) linear / Math.max(1, linearDense));
        log.info("CUDA runner: {}", facts);
    }

    /**
     * Opens a runner on {@code device} (one ordinal, or one per stage of {@code split}); every failure to start becomes
     * one line (DeviceUnavailableException), and frees what it took.
     */
    public static ModelRunner open(Device device, DeviceOptions options, Model model, RunnerConfig config, LayerSplit split) {
        int[] ordinals = device.ordinals();
        if (ordinals.length != split.stages()) throw new IllegalArgumentException(split + " for " + device);
        List<CudaContext> contexts = new ArrayList<>();
        List<CudaStage> stages = new ArrayList<>();
        Map<Integer, long[]> memoryAtStart = new HashMap<>();
        try {
            for (int ordinal : ordinals) {
                CudaContext ctx = CudaContext.open(ordinal);
                contexts.add(ctx);
                // Free memory before this runner allocated anything on the device: what others hold stays theirs.
                memoryAtStart.computeIfAbsent(ordinal, o -> ctx.memory().info());
            }
            return new CudaModelRunner(device, options, model, config, split, contexts, memoryAtStart, stages);
        } catch (CudaUnavailableException | DeviceOutOfMemoryException e) {
            release(stages, contexts);
            throw new DeviceUnavailableException(e.getMessage().startsWith("--device") ? e.getMessage()
                    : "--device " + device + ": " + e.getMessage(), e);
        } catch (RuntimeException e) {
            release(stages, contexts);
            throw e;
        }
    }

    private static void release(List<CudaStage> stages, List<CudaContext> contexts) {
        for (CudaStage s : stages) {
            try {
                s.close();
            } catch (RuntimeException e) {
                log.warn("freeing stage {} after a failed start: {}", s.index, e.toString());
            }
        }
        for (CudaContext ctx : contexts) {
            try {
                ctx.close();
            } catch (RuntimeException e) {
                log.warn("closing {} after a failed start: {}", ctx.info(), e.toString());
            }
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
            boolean decode = StepPacking.isDecode(step);
            int bucket = decode && useGraphs ? buckets.bucketFor(step.tokens()) : -1;
            int padded = bucket > 0 ? bucket : step.tokens();
            packing.pack(step, padded);
            int headRows = bucket > 0 ? padded : packing.logitRows() + packing.argmaxRows();
            for (int i = 0; i < stages.size(); i++) {
                CudaStage s = stages.get(i);
                s.ctx.makeCurrent();
                s.upload(packing);
                if (i > 0) s.ctx.waitFor(stages.get(i - 1).done());
                s.run(padded, decode, headRows, bucket);
                if (i + 1 < stages.size()) s.handTo(stages.get(i + 1), padded, c.hidden());
            }
            // The last stage's stream waited for every earlier one: its synchronize covers the whole step.
            CudaStage last = stages.getLast();
            int rows = packing.logitRows(), picks = packing.argmaxRows();
            if (rows > 0) last.ctx.downloadAsync(last.forward.logits().address(), hostLogits, 0, 4L * rows * c.vocab());
            if (picks > 0) last.ctx.downloadAsync(last.forward.argmax().address() + 4L * rows, hostArgmax, 0, 4L * picks);
            last.ctx.synchronize();
            if (rows > 0) hostLogits.view().asFloatBuffer().get(0, logits, 0, rows * c.vocab());
            if (picks > 0) {
                IntBuffer ids = hostArgmax.view().asIntBuffer();
                int i = 0;
                for (int s = 0; s < step.sequences(); s++) if (step.output(s) == Step.Output.LAST_ARGMAX) argmax[s] = ids.get(i++);
            }
        } catch (CudaException e) {
            if (e.sticky()) lost = true;
            throw CudaFailures.duringStep(device.toString(), e);
        }
    }

    @Override
    public MemoryUse memory() {
        long weights = 0, kv = 0, workspace = 0;
        for (CudaStage s : stages) {
            MemoryLedger l = s.ctx.memory().ledger();
            weights += l.used(MemoryKind.WEIGHTS);
            kv += l.used(MemoryKind.KV);
            workspace += l.used(MemoryKind.WORKSPACE);
        }
        return new MemoryUse(weights, kv, workspace, totalMemory);
    }

    @Override
    public Map<String, Object> describe() {
        return facts;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (lost) {
            log.warn("--device {}: the CUDA context is lost (sticky error); its memory is freed when the process exits", device);
            return;
        }
        List<CudaContext> contexts = new ArrayList<>();
        for (CudaStage s : stages) contexts.add(s.ctx);
        try {
            for (CudaStage s : stages) s.close();
            stages.getLast().ctx.makeCurrent();
            hostLogits.close();
            hostArgmax.close();
        } finally {
            for (CudaContext ctx : contexts) ctx.close();
        }
    }
}
