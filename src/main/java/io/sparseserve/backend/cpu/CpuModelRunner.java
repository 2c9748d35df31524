package io.sparseserve.backend.cpu;

import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.Logits;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.MemoryUse;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import java.lang.management.ManagementFactory;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The CPU runner: the {@link Transformer} on the Vector API kernels ({@link CpuBackend}) over the shared
 * {@link CpuPool}, weights read in place from the memory-mapped files, keys and values in float32 heap arrays
 * ({@link KvCache}). A step allocates nothing once compiled; a sequence's numbers do not depend on its batch (bit for
 * bit: every kernel computes each token row in the same order whatever the other rows are).
 */
public final class CpuModelRunner implements ModelRunner {
    private final Model model;
    private final ModelConfig c;
    private final RunnerConfig config;
    private final CpuPool pool;
    private final Transformer transformer;
    private final KvCache cache;
    // Head outputs when some sequences want only an argmax: grown on first need, then reused.
    private float[] scratch = new float[0];

    public CpuModelRunner(Model model, RunnerConfig config) {
        this(model, config, CpuPool.shared());
    }

    public CpuModelRunner(Model model, RunnerConfig config, CpuPool pool) {
        this.model = model;
        this.c = model.config();
        this.config = config;
        this.pool = pool;
        long perBlock = KvSizing.bytesPerBlock(c, config.blockSize(), KvDtype.F32);
        int blocks = switch (config.kv()) {
            case KvCapacity.Auto a -> KvSizing.cpuAutoBlocks(a, config.blockSize(), perBlock, freeHeap());
            case KvCapacity.Blocks b -> KvSizing.exactBlocks(b, perBlock);
            case KvCapacity.Bytes b -> KvSizing.exactBlocks(b, perBlock);
        };
        this.cache = new KvCache(c.layers(), c.kvHeads(), c.headDim(), config.blockSize(), blocks);
        this.transformer = new Transformer(model, new CpuBackend(pool, c.maxPositions()), config.maxStepTokens());
    }

    /** Heap free now: the most that could still be allocated. */
    private static long freeHeap() {
        Runtime rt = Runtime.getRuntime();
        return rt.maxMemory() - (rt.totalMemory() - rt.freeMemory());
    }

    @Override
    public String device() {
        return "cpu";
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
        return cache.blocks();
    }

    @Override
    public KvDtype kvDtype() {
        return KvDtype.F32;
    }

    @Override
    public void forward(Step step, float[] logits, int[] argmax) {
        step.check(config.maxStepTokens(), config.maxStepSequences(), cache.blockSize(), cache.blocks());
        int argmaxRows = 0;
        for (int s = 0; s < step.sequences(); s++) if (step.output(s) == Step.Output.LAST_ARGMAX) argmaxRows++;
        if (argmaxRows == 0) {
            transformer.forward(step, cache, logits);
            return;
        }
        // The head runs once over every wanted row (its weights are streamed once); the argmax rows follow the
        // logits rows in the scratch buffer and only the logits rows are copied out.
        int vocab = c.vocab(), logitRows = step.logitRows();
        int floats = (logitRows + argmaxRows) * vocab;
        if (scratch.length < floats) scratch = new float[floats];
        transformer.forward(step, cache, scratch);
        System.arraycopy(scratch, 0, logits, 0, logitRows * vocab);
        int row = logitRows;
        for (int s = 0; s < step.sequences(); s++) {
            if (step.output(s) == Step.Output.LAST_ARGMAX) argmax[s] = Logits.argmax(scratch, (row++) * vocab, vocab);
        }
    }


    @Override
    public MemoryUse memory() {
        long total = ManagementFactory.getPlatformMXBean(com.sun.management.OperatingSystemMXBean.class).getTotalMemorySize();
        return new MemoryUse(model.weightBytes(), cache.bytes(), transformer.activationBytes() + (long) scratch.length * Float.BYTES,
                total > 0 ? total : -1);
    }

    @Override
    public Map<String, Object> describe() {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("device", device());
        d.put("threads", pool.threads());
        d.put("kv_blocks", kvBlocks());
        d.put("kv_dtype", kvDtype().label());
        d.put("block_size", blockSize());
        return d;
    }

    @Override
    public void close() {
        // Heap arrays and mapped weights (the model's): nothing of its own to free.
    }
}
