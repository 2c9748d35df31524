package io.sparseserve.backend.cuda;

/**
 * A CUDA (driver, cuBLAS or cuSPARSE) call that returned an error, naming the call and the error. {@link #sticky()}
 * errors leave the context unusable: every later call in this process fails the same way, so the server must stop
 * serving and exit (an orchestrator restarts it) rather than answer requests with errors forever.
 */
public final class CudaException extends RuntimeException {
    private final String call;
    private final int code;
    private final boolean sticky;

    public CudaException(String call, int code, String errorName, boolean sticky) {
        super(call + " failed: " + errorName + " (" + code + ")" + (sticky ? "; the CUDA context is lost" : ""));
        this.call = call;
        this.code = code;
        this.sticky = sticky;
    }

    /** The API function that failed, e.g. {@code cuMemAlloc}. */
    public String call() {
        return call;
    }

    /** The library's result code (CUresult, cublasStatus_t or cusparseStatus_t). */
    public int code() {
        return code;
    }

    /** True when the error corrupts the context (illegal address, ECC...): the process must exit. */
    public boolean sticky() {
        return sticky;
    }
}
