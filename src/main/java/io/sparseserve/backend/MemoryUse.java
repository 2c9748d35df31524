package io.sparseserve.backend;

/**
 * Bytes a runner holds on its device, by kind (the {@code kind} tag of {@code sparseserve.device.memory.used}), and the
 * device's total ({@code sparseserve.device.memory.total}).
 *
 * @param weights the model's weights as the device holds them (compressed ones compressed)
 * @param kv the KV blocks
 * @param workspace everything else it allocated: activation buffers sized for the largest step, library workspaces
 *        (cuBLAS, cuSPARSE), CUDA graphs, scratch
 * @param total the device's memory in total (for the CPU: physical memory, or the cgroup's limit when smaller), or -1
 *        where unknown
 */
public record MemoryUse(long weights, long kv, long workspace, long total) {
    public long used() {
        return weights + kv + workspace;
    }
}
