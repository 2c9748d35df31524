package io.sparseserve.backend.cpu;

import io.sparseserve.backend.DeviceUnavailableException;
import io.sparseserve.backend.HostMemory;
import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.Logits;
import io.sparseserve.backend.MemoryUse;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * The CPU runner: the {@link Transformer} on the Vector API kernels ({@link CpuBackend}) over the shared
 * {@link CpuPool}, weights read in place from the memory-mapped files, keys and values in native memory off the Java
 * heap ({@link KvCache}), float32 or bfloat16. A step allocates nothing once compiled; a sequence's numbers do not
 * depend on its batch (bit for bit: every kernel computes each token row in the same order whatever the other rows
 * are).
 *
 * <p>KV sizing: an exact capacity as asked ({@link KvCapacity.Blocks}, {@link KvCapacity.Bytes}); an automatic one
 * as {@link KvSizing#cpuAutoBlocks} computes from the host memory available now. Either way it first checks that
 * weights, KV and the Java heap's limit fit in the host's memory ({@link KvSizing#checkHostFit}), and fails with one
 * line when they do not.
 */
public final class CpuModelRunner implements ModelRunner {
    private final Model model;
    private final ModelConfig c;
    private final RunnerConfig config;
    private final CpuPool pool;
    private final KvDtype dtype;
    private final HostMemory host;
    private final Transformer transformer;
    private final KvCache cache;
    // Head outputs when some sequences want only an argmax: grown on first need, then reused.
    private float[] scratch = new float[0];

    public CpuModelRunner(Model model, RunnerConfig config) {
        this(model, config, CpuPool.shared());
    }

    public CpuModelRunner(Model model, RunnerConfig config, CpuPool pool) {
        this(model, config, pool, KvDtype.F32);
    }

    public CpuModelRunner(Model model, RunnerConfig config, CpuPool pool, KvDtype dtype) {
        this.model = model;
        this.c = model.config();
        this.config = config;
        this.pool = pool;
        this.dtype = dtype;
        this.host = HostMemory.read();
        long perBlock = KvSizing.bytesPerBlock(c, config.blockSize(), dtype);
        int blocks = switch (config.kv()) {
            case KvCapacity.Auto a -> KvSizing.cpuAutoBlocks(a, config.blockSize(), perBlock, host.availableBytes());
            case KvCapacity.Blocks b -> KvSizing.exactBlocks(b, perBlock);
            case KvCapacity.Bytes b -> KvSizing.exactBlocks(b, perBlock);
        };
        KvSizing.checkHostFit(model.weightBytes(), blocks * perBlock, blocks, config.blockSize(), dtype,
                Runtime.getRuntime().maxMemory(), host);
        long widest = (long) config.maxStepTokens() * Math.max(Math.max(c.hidden(), c.qDim()), c.intermediate());
        if (widest > Integer.MAX_VALUE - 8) {
            throw new DeviceUnavailableException("cpu: steps of " + config.maxStepTokens() + " tokens need activation "
                    + "arrays of " + widest + " floats, more than a Java array holds; lower --max-batch-tokens");
        }
        this.cache = openCache(blocks, perBlock);
        try {
            this.transformer = new Transformer(model, new CpuBackend(pool, c.maxPositions()), config.maxStepTokens());
        } catch (OutOfMemoryError e) {
            cache.close();
            // The activation buffers (and rope tables, score buffers) live on the heap: one line, not a stack trace.
            throw new DeviceUnavailableException(String.format(Locale.ROOT, "cpu: the Java heap (limit %.2f GiB) cannot "
                    + "hold the activation buffers of %d-token steps; lower --max-batch-tokens or raise SPARSE_SERVE_HEAP",
                    Runtime.getRuntime().maxMemory() / (double) (1L << 30), config.maxStepTokens()), e);
        } catch (RuntimeException | Error e) {
            cache.close();
            throw e;
        }
    }

    private KvCache openCache(int blocks, long perBlock) {
        try {
            return new KvCache(c.layers(), c.kvHeads(), c.headDim(), config.blockSize(), blocks, dtype);
        } catch (OutOfMemoryError e) {
            // The fit check passed but the system refused the mapping (overcommit limits, ulimit -v): one line.
            throw new DeviceUnavailableException(String.format(Locale.ROOT,
                    "cpu: could not reserve %.2f GiB for the KV cache (%d blocks, %s): %s", blocks * perBlock / (double) (1L << 30),
                    blocks, dtype.label(), e.getMessage()), e);
        }
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
        return dtype;
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

    /** Weights as held, the KV cache's native bytes (reserved; pages become resident as sequences fill them). */
    @Override
    public MemoryUse memory() {
        return new MemoryUse(model.weightBytes(), cache.bytes(), transformer.activationBytes() + (long) scratch.length * Float.BYTES,
                host.totalBytes());
    }

    @Override
    public Map<String, Object> describe() {
        Map<String, Object> d = new LinkedHashMap<>();
        d.put("device", device());
        d.put("threads", pool.threads());
        d.put("kv_blocks", kvBlocks());
        d.put("kv_dtype", kvDtype().label());
        d.put("kv_bytes", cache.bytes());
        d.put("kv_memory", "native (off the Java heap)");
        d.put("block_size", blockSize());
        d.put("host_memory_bytes", host.totalBytes());
        d.put("host_memory_limited_by", host.limitedBy());
        return d;
    }

    /** Frees the KV cache's native memory; the mapped weights are the model's. Idempotent. */
    @Override
    public void close() {
        cache.close();
    }
}
