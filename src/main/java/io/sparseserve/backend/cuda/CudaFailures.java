package io.sparseserve.backend.cuda;

import io.sparseserve.backend.DeviceFailure;

/**
 * Turns a failed CUDA call seen during a step into what the engine acts on: a sticky error ({@link CudaException#sticky},
 * the context is lost) becomes a {@link DeviceFailure}, after which the server stops serving and the process exits
 * non-zero; any other error stays a {@link CudaException}, which fails only the step's sequences. The one place that
 * decides it, for the CUDA runner and the fault injection alike.
 */
public final class CudaFailures {
    private CudaFailures() {}

    /** What a runner on {@code device} throws for {@code e}. */
    public static RuntimeException duringStep(String device, CudaException e) {
        if (e.sticky()) return new DeviceFailure("--device " + device + ": " + e.getMessage(), e);
        return e;
    }
}
