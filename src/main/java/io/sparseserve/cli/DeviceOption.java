package io.sparseserve.cli;

import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.LayerSplit;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.backend.SparseKernel;
import picocli.CommandLine.Option;

/**
 * The device options shared by serve, generate, eval, bench and inspect: where the model runs and how a GPU lays out
 * its memory. Validated before any model is loaded (a bad value is one line and exit 2).
 */
final class DeviceOption {
    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEVICE",
            description = "cpu (default), cuda, cuda:N (one GPU), or cuda:N,M,... (the model split by layers over "
                    + "these GPUs in order, one stage each; an ordinal may repeat: cuda:0,0 is two stages on one GPU).")
    String device;

    @Option(names = "--layer-split", paramLabel = "A,B,...",
            description = "Decoder layers per device of --device cuda:N,M,..., in order (default: the split "
                    + "'plan --gpus <devices>' prints, balanced by memory).")
    String layerSplit;

    @Option(names = "--kv-dtype", paramLabel = "DTYPE",
            description = "KV-cache element type: bf16 or f32 (default: f32 on the cpu, where bf16 halves the KV memory; bf16 on a GPU).")
    String kvDtype;

    @Option(names = "--gpu-memory-utilization", defaultValue = "0.9", paramLabel = "F",
            description = "Fraction of a GPU's memory to fill, KV cache included (default ${DEFAULT-VALUE}); ignored on the cpu.")
    double gpuMemoryUtilization;

    @Option(names = "--sparse-kernel", defaultValue = "auto", paramLabel = "KIND",
            description = "Sparse matrices on a GPU: auto (fastest per shape, timed at load), own, cusparse or dense "
                    + "(default ${DEFAULT-VALUE}); ignored on the cpu.")
    String sparseKernel;

    Device device() {
        return Device.parse(device);
    }

    DeviceOptions options() {
        return new DeviceOptions(kvDtype == null ? null : KvDtype.parse(kvDtype), gpuMemoryUtilization,
                SparseKernel.parse(sparseKernel), layerSplit == null ? null : LayerSplit.parse(layerSplit));
    }

    /** The runner factory for these options; throws (exit 2) for a bad or unsupported combination. */
    RunnerFactory runners() {
        return ModelRunners.factory(device(), options());
    }
}
