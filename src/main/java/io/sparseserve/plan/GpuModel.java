package io.sparseserve.plan;

import io.sparseserve.model.InvalidInputException;
import java.util.Arrays;
import java.util.stream.Collectors;

/**
 * GPU cards by name, with the memory {@code nvidia-smi} reports as total for them (MiB): what a process can see,
 * a little under the marketing figure for the H100 and H200.
 */
public enum GpuModel {
    A100_80G("a100-80g", 81_920),
    A100_40G("a100-40g", 40_960),
    H100_80G("h100-80g", 81_559),
    H200("h200", 143_771);

    private final String id;
    private final long mib;

    GpuModel(String id, long mib) {
        this.id = id;
        this.mib = mib;
    }

    public String id() {
        return id;
    }

    public long bytes() {
        return mib << 20;
    }

    public static GpuModel of(String name) {
        return Arrays.stream(values()).filter(g -> g.id.equalsIgnoreCase(name.trim())).findFirst()
                .orElseThrow(() -> new InvalidInputException("--gpu must be one of "
                        + Arrays.stream(values()).map(GpuModel::id).collect(Collectors.joining(", ")) + ", got '" + name + "'"));
    }
}
