package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.DeviceUnavailableException;
import io.sparseserve.backend.LayerSplit;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.model.Model;

/**
 * The seam where the CUDA runner plugs in: {@link io.sparseserve.backend.ModelRunners} sends every {@code cuda} device
 * here. It checks, in order, what a CUDA runner needs and names the first thing missing in one line: a driver
 * ({@link CudaDriverProbe}), the device ordinal, the kernels in the jar ({@link #KERNELS}), then the runner itself.
 * Then it opens a {@link CudaModelRunner}.
 */
public final class CudaRunners {
    private CudaRunners() {}

    /** The classpath resource holding the fatbin that nvcc builds from native/*.cu (absent in a build without nvcc). */
    public static final String KERNELS = Fatbin.RESOURCE;

    /**
     * Checks, before any model is loaded, that a single CUDA device can run: a driver, the device ordinal, the kernels
     * in the jar. Throws {@link DeviceUnavailableException} with one line naming the first thing missing.
     */
    public static void check(Device device) {
        String option = "--device " + device;
        for (int ordinal : device.ordinals()) CudaDriverProbe.require(option, ordinal);
        if (!hasKernels()) {
            throw new DeviceUnavailableException(option + ": no GPU kernels in this jar (" + KERNELS
                    + " is built only where nvcc is on the PATH)");
        }
    }

    /**
     * Opens a runner on {@code device}: one GPU, or a layer split over several stages ({@link StageLayout#resolve}:
     * {@code --layer-split} or plan's split). The split is checked against the model first (a bad one is
     * {@link io.sparseserve.model.InvalidInputException}, one line), then the devices ({@link #check}); then the
     * runner opens, or throws {@link DeviceUnavailableException}.
     */
    public static ModelRunner open(Device device, DeviceOptions options, Model model, RunnerConfig config) {
        LayerSplit split = StageLayout.resolve(device, options, model);
        check(device);
        return CudaModelRunner.open(device, options, model, config, split);
    }

    public static boolean hasKernels() {
        return CudaRunners.class.getResource(KERNELS) != null;
    }
}
