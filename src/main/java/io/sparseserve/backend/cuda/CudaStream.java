package io.sparseserve.backend.cuda;

import jcuda.driver.CUstream;

/**
 * The one stream our kernels, cuBLAS and cuSPARSE share. A subclass only so that the raw {@code CUstream} handle
 * (protected in JCuda) can be handed to cuBLAS through FFM downcalls.
 */
public final class CudaStream extends CUstream {
    /** The raw handle cuStreamCreate wrote into this object. */
    public long handle() {
        return getNativePointer();
    }
}
