package io.sparseserve.backend;

import io.sparseserve.backend.cpu.CpuModelRunner;
import io.sparseserve.backend.cpu.CpuPool;
import io.sparseserve.backend.cuda.CudaRunners;
import io.sparseserve.model.InvalidInputException;

/** Runner factories by device: the one place that knows which runner serves which {@code --device}. */
public final class ModelRunners {
    private ModelRunners() {}

    /**
     * The factory for a device. Checks the options against the device at once (before a model is loaded): several
     * GPUs (a layer split) are not supported yet; a GPU needs a driver, the device and the kernels
     * ({@link CudaRunners#check}). The CPU keeps keys and values in f32 (its default) or bf16.
     */
    public static RunnerFactory factory(Device device, DeviceOptions options) {
        KvDtype kv = options.kvDtypeFor(device);
        return switch (device.kind()) {
            case CPU -> (model, config) -> new CpuModelRunner(model, config, CpuPool.shared(), kv);
            case CUDA -> {
                if (device.ordinals().length > 1) {
                    throw new InvalidInputException("--device " + device + ": splitting a model over several GPUs is not "
                            + "supported yet (one device, e.g. cuda:0)");
                }
                CudaRunners.check(device);
                yield (model, config) -> CudaRunners.open(device, options, model, config);
            }
        };
    }

    /** The CPU runner with its defaults: what tests and CPU-only callers use. */
    public static RunnerFactory cpu() {
        return CpuModelRunner::new;
    }
}
