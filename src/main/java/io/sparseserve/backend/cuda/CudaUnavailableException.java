package io.sparseserve.backend.cuda;

/**
 * The CUDA backend cannot start here: no driver library, no device, no such device ordinal, or a jar built without
 * the kernels. Its message is one line for the user (the CLI prints it and exits 2, without a stack trace).
 */
public final class CudaUnavailableException extends RuntimeException {
    public CudaUnavailableException(String message) {
        super(message);
    }

    public CudaUnavailableException(String message, Throwable cause) {
        super(message, cause);
    }
}
