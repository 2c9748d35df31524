package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;

/**
 * Device-level options of the command line, given to {@link ModelRunners#factory}.
 *
 * @param kvDtype how KV blocks store keys and values; null = the device's default (f32 on the CPU, bf16 on a GPU)
 * @param gpuMemoryUtilization the fraction of a GPU's memory the runner may fill, KV cache included (vLLM's
 *        {@code --gpu-memory-utilization}); in (0, 1]
 * @param sparseKernel the sparse path on a GPU
 * @param layerSplit layers per device of a split ({@code --layer-split}); null = the split {@code plan} computes
 */
public record DeviceOptions(KvDtype kvDtype, double gpuMemoryUtilization, SparseKernel sparseKernel, LayerSplit layerSplit) {
    public static final double DEFAULT_GPU_MEMORY_UTILIZATION = 0.9;

    public DeviceOptions {
        if (!(gpuMemoryUtilization > 0 && gpuMemoryUtilization <= 1)) {
            throw new InvalidInputException("--gpu-memory-utilization must be in (0, 1], got " + gpuMemoryUtilization);
        }
        java.util.Objects.requireNonNull(sparseKernel, "sparseKernel");
    }

    /** Without a layer split of its own. */
    public DeviceOptions(KvDtype kvDtype, double gpuMemoryUtilization, SparseKernel sparseKernel) {
        this(kvDtype, gpuMemoryUtilization, sparseKernel, null);
    }

    public static DeviceOptions defaults() {
        return new DeviceOptions(null, DEFAULT_GPU_MEMORY_UTILIZATION, SparseKernel.AUTO);
    }

    /** The KV dtype on a device: as asked, else f32 on the CPU and bf16 on a GPU. */
    public KvDtype kvDtypeFor(Device device) {
        if (kvDtype != null) return kvDtype;
        return device.isCpu() ? KvDtype.F32 : KvDtype.BF16;
    }
}
