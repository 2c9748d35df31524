package io.sparseserve.backend;

import io.sparseserve.backend.cpu.CpuModelRunner;
import io.sparseserve.backend.cpu.CpuPool;
import io.sparseserve.backend.cuda.CudaRunners;
import io.sparseserve.model.InvalidInputException;

/** Runner factories by device: the one place that knows which runner serves which {@code --device}. */
public final class ModelRunners {
    private ModelRunners() {}

    /**
     * The factory for a device. Checks the options against the device at once (before a model is loaded): the CPU
     * keeps keys and values in f32 (its default) or bf16 and is not split; a {@code --layer-split} has one count per
     * device; a GPU needs a driver, the device and the kernels ({@link CudaRunners#check}). The split is checked against the model
     * when a runner opens. With {@code -Dsparseserve.faultInjection} every runner is wrapped ({@link FaultInjection}).
     */
    public static RunnerFactory factory(Device device, DeviceOptions options) {
        KvDtype kv = options.kvDtypeFor(device);
        FaultInjection fault = FaultInjection.fromSystemProperty();
        RunnerFactory factory = switch (device.kind()) {
            case CPU -> {
                if (options.layerSplit() != null) {
                    throw new InvalidInputException("--layer-split needs several GPUs (--device cuda:N,M,...), not --device cpu");
                }
                yield (model, config) -> new CpuModelRunner(model, config, CpuPool.shared(), kv);
            }
            case CUDA -> {
                LayerSplit split = options.layerSplit();
                if (split != null && split.stages() != device.ordinals().length) {
                    split.check(device, split.layers()); // throws: one count per device
                }
                CudaRunners.check(device);
                yield (model, config) -> CudaRunners.open(device, options, model, config);
            }
        };
        return fault == null ? factory : fault.wrap(factory);
    }

    /** The CPU runner with its defaults: what tests and CPU-only callers use. */
    public static RunnerFactory cpu() {
        return CpuModelRunner::new;
    }
}
