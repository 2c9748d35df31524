package io.sparseserve.backend;

import io.sparseserve.model.ModelConfig;
import java.util.Locale;

/**
 * How many KV blocks a runner holds: pure arithmetic, tested without a device.
 *
 * <p>On a GPU (vLLM's {@code gpu_memory_utilization}, "the fraction of GPU memory to be used for the model executor"):
 * the runner may fill {@code total * utilization} bytes of the device, less what others held before it started
 * ({@code total - freeAtStart}); after its weights, workspace and activations the rest is KV blocks. At least one
 * sequence of the full context length must fit, else the model does not fit and the message says by how much.
 */
public final class KvSizing {
    private KvSizing() {}

    private static final double GIB = 1024.0 * 1024 * 1024;

    /** Bytes of keys and values of one position over all layers. */
    public static long bytesPerToken(ModelConfig c, KvDtype dtype) {
        return 2L * c.layers() * c.kvDim() * dtype.bytes();
    }

    public static long bytesPerBlock(ModelConfig c, int blockSize, KvDtype dtype) {
        return bytesPerToken(c, dtype) * blockSize;
    }

    /** Bytes of one KV block of {@code layers} layers: what a stage of a layer split holds per block. */
    public static long bytesPerBlock(ModelConfig c, int layers, int blockSize, KvDtype dtype) {
        return 2L * layers * c.kvDim() * dtype.bytes() * blockSize;
    }

    /**
     * One stage of a layer split, as its KV sizing sees it: its device, its layers, and what it holds before KV.
     *
     * @param totalBytes and {@code freeAtStartBytes}: its device's, measured before any stage allocated there
     */
    public record StageMemory(int ordinal, int layers, long totalBytes, long freeAtStartBytes, long weightBytes,
                              long workspaceBytes) {}

    /**
     * KV blocks of a layer split: every stage holds the same number of blocks (the engine has one block table per
     * sequence), each block of its own layers. Stages on the same device ({@code cuda:0,0}) share that device's budget:
     * per device, (allowed - the weights and workspaces of all its stages) / (the bytes per block of all its stages);
     * the split holds the smallest over its devices. Throws {@link DeviceUnavailableException} naming the device that
     * cannot hold one full-length sequence.
     */
    public static int stageBlocks(java.util.List<StageMemory> stages, double utilization, ModelConfig c, int blockSize,
                                  KvDtype dtype, int minBlocks, long maxBlocks) {
        java.util.Map<Integer, long[]> perDevice = new java.util.LinkedHashMap<>(); // total, free, weights, workspace, layers
        java.util.Map<Integer, StringBuilder> names = new java.util.LinkedHashMap<>();
        for (int i = 0; i < stages.size(); i++) {
            StageMemory s = stages.get(i);
            long[] d = perDevice.computeIfAbsent(s.ordinal(), o -> new long[] {s.totalBytes(), s.freeAtStartBytes(), 0, 0, 0});
            d[2] += s.weightBytes();
            d[3] += s.workspaceBytes();
            d[4] += s.layers();
            StringBuilder n = names.computeIfAbsent(s.ordinal(), o -> new StringBuilder());
            n.append(n.isEmpty() ? "" : ",").append(i);
        }
        long blocks = maxBlocks;
        for (var e : perDevice.entrySet()) {
            long[] d = e.getValue();
            String label = stages.size() == 1 ? "cuda:" + e.getKey() : "cuda:" + e.getKey() + " (stage"
                    + (names.get(e.getKey()).indexOf(",") >= 0 ? "s " : " ") + names.get(e.getKey()) + ", " + d[4] + " layers)";
            DeviceBudget budget = new DeviceBudget(d[0], d[1], utilization, d[2], d[3], 0);
            blocks = Math.min(blocks, gpuBlocks(label, budget, bytesPerBlock(c, (int) d[4], blockSize, dtype), minBlocks, maxBlocks));
        }
        return (int) blocks;
    }

    /** Blocks one sequence of {@code positions} positions needs. */
    public static int blocksFor(int positions, int blockSize) {
        return (positions + blockSize - 1) / blockSize;
    }

    /**
     * What a device has and what the runner allocated before its KV cache.
     *
     * @param totalBytes the device's memory ({@code cuMemGetInfo}'s total)
     * @param freeAtStartBytes free before the runner allocated anything (others' use = total - this)
     * @param utilization the fraction of the device the runner may fill, in (0, 1]
     * @param weightBytes the weights as uploaded
     * @param workspaceBytes library workspaces, graphs, scratch
     * @param activationBytes the activation buffers for the largest step
     */
    public record DeviceBudget(long totalBytes, long freeAtStartBytes, double utilization, long weightBytes,
                               long workspaceBytes, long activationBytes) {
        public DeviceBudget {
            if (totalBytes <= 0 || freeAtStartBytes < 0 || freeAtStartBytes > totalBytes) {
                throw new IllegalArgumentException("device memory: total " + totalBytes + ", free " + freeAtStartBytes);
            }
            if (!(utilization > 0 && utilization <= 1)) throw new IllegalArgumentException("utilization " + utilization);
            if (weightBytes < 0 || workspaceBytes < 0 || activationBytes < 0) throw new IllegalArgumentException("negative bytes");
        }

        /** Bytes the runner may fill: its share of the device less what others hold. */
        public long allowedBytes() {
            long othersHold = totalBytes - freeAtStartBytes;
            return Math.max(0, (long) Math.floor(totalBytes * utilization) - othersHold);
        }

        /** Bytes before any KV block. */
        public long fixedBytes() {
            return weightBytes + workspaceBytes + activationBytes;
        }
    }

    /**
     * KV blocks on a GPU: (allowed - weights - workspace - activations) / bytes per block, at most {@code maxBlocks}
     * (an int-indexed table; or an exact capacity asked for). Throws {@link DeviceUnavailableException} "needs X GiB, Y
     * GiB free" when fewer than {@code minBlocks} (one full-length sequence) fit.
     */
    public static int gpuBlocks(String device, DeviceBudget b, long bytesPerBlock, int minBlocks, long maxBlocks) {
        if (bytesPerBlock <= 0 || minBlocks < 1 || maxBlocks < minBlocks) throw new IllegalArgumentException("block sizing");
        long left = b.allowedBytes() - b.fixedBytes();
        long blocks = left <= 0 ? 0 : left / bytesPerBlock;
        if (blocks < minBlocks) {
            long needs = b.fixedBytes() + minBlocks * bytesPerBlock;
            throw new DeviceUnavailableException(String.format(Locale.ROOT,
                    "%s: the model needs %s GiB (weights %s GiB, workspace and activations %s GiB, KV for one "
                            + "full-length sequence %s GiB), %s GiB free at --gpu-memory-utilization %s",
                    device, gib(needs), gib(b.weightBytes()), gib(b.workspaceBytes() + b.activationBytes()),
                    gib(minBlocks * bytesPerBlock), gib(b.allowedBytes()), b.utilization()));
        }
        return (int) Math.min(Math.min(blocks, maxBlocks), Integer.MAX_VALUE);
    }

    /**
     * KV blocks for an exact capacity asked for ({@link KvCapacity.Blocks} or {@link KvCapacity.Bytes}); an
     * {@link KvCapacity.Auto} capacity is the device's to size. At least one block.
     */
    public static int exactBlocks(KvCapacity capacity, long bytesPerBlock) {
        return switch (capacity) {
            case KvCapacity.Blocks b -> b.blocks();
            case KvCapacity.Bytes b -> (int) Math.max(1, Math.min(Integer.MAX_VALUE, b.bytes() / bytesPerBlock));
            case KvCapacity.Auto a -> throw new IllegalArgumentException("an automatic capacity is sized by the device");
        };
    }

    /**
     * The share of the host's available memory an automatic CPU KV cache may take. The rest stays for what the
     * kernel counts as available but the process needs: the mapped weights' pages (page cache), the Java heap's growth
     * up to its limit, other processes. vLLM sizes its KV cache from a memory fraction too
     * ({@code gpu_memory_utilization}); on the CPU, where weights and everything else share one memory, half.
     */
    public static final double CPU_AUTO_FRACTION = 0.5;

    /**
     * KV blocks on the CPU for an automatic capacity: enough for {@code a.sequences()} sequences of
     * {@code a.positionsEach()} positions, but at most {@link #CPU_AUTO_FRACTION} of the host memory available now
     * ({@link HostMemory#availableBytes}), and at least one such sequence ({@link #checkHostFit} then says whether that
     * fits at all).
     */
    public static int cpuAutoBlocks(KvCapacity.Auto a, int blockSize, long bytesPerBlock, long availableBytes) {
        long perSeq = blocksFor(a.positionsEach(), blockSize);
        long want = a.sequences() * perSeq;
        long fit = (long) (Math.max(0, availableBytes) * CPU_AUTO_FRACTION) / bytesPerBlock;
        return (int) Math.min(Integer.MAX_VALUE, Math.max(perSeq, Math.min(want, fit)));
    }

    /**
     * Checks at start that the CPU runner fits in the host's memory: weights (mapped or copied), the KV cache (native,
     * untouched until used, but it fills as sequences grow) and the Java heap at its limit (it may grow that far)
     * against physical RAM or the cgroup's limit. Throws {@link DeviceUnavailableException} with one line saying how
     * much is needed and how much there is.
     */
    public static void checkHostFit(long weightBytes, long kvBytes, long blocks, int blockSize, KvDtype dtype,
                                    long heapLimitBytes, HostMemory host) {
        long needs = weightBytes + kvBytes + heapLimitBytes;
        if (needs <= host.totalBytes()) return;
        throw new DeviceUnavailableException(String.format(Locale.ROOT,
                "cpu: the model needs %s GiB (weights %s GiB, KV cache %s GiB = %d blocks of %d positions in %s, "
                        + "Java heap limit %s GiB), this machine has %s GiB (%s); lower --max-model-len "
                        + "(or --kv-cache-bytes), or use --kv-dtype bf16",
                gib(needs), gib(weightBytes), gib(kvBytes), blocks, blockSize, dtype.label(), gib(heapLimitBytes),
                gib(host.totalBytes()), host.limitedBy()));
    }

    static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f", bytes / GIB);
    }
}
