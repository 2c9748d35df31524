package io.sparseserve.backend;

/**
 * The device failed in a way no later step can recover from (a sticky CUDA error: illegal address, ECC, launch
 * failure). Thrown by {@link ModelRunner#forward}; the server then reports NOT_SERVING and the process ends with a
 * non-zero code so that an orchestrator restarts it.
 */
public final class DeviceFailure extends RuntimeException {
    public DeviceFailure(String message) {
        super(message);
    }

    public DeviceFailure(String message, Throwable cause) {
        super(message, cause);
    }
}
