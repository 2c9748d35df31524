package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;

/**
 * The device asked for cannot serve: no CUDA driver, no kernels in the jar, no such device ordinal, not enough
 * memory. A usage problem, not a bug: the command line prints its one-line message and exits 2.
 */
public final class DeviceUnavailableException extends InvalidInputException {
    public DeviceUnavailableException(String message) {
        super(message);
    }

    public DeviceUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
