package io.sparseserve.backend.cuda;

import jcuda.driver.CUresult;

/**
 * Checks CUresult codes: every driver call goes through {@link #check}, so a failure becomes an exception naming
 * the call instead of a silent wrong answer (JCuda's own exceptions are left off: they do not say which call).
 */
public final class Cu {
    private Cu() {}

    public static void check(String call, int result) {
        if (result != CUresult.CUDA_SUCCESS) throw new CudaException(call, result, CUresult.stringFor(result), isSticky(result));
    }

    /**
     * The errors after which "the process [is left] in an inconsistent state and any further CUDA work will return the
     * same error" (CUDA Driver API, CUresult: CUDA_ERROR_ILLEGAL_ADDRESS and the launch faults 714-719), and the
     * uncorrectable memory errors (ECC, NVLink).
     */
    public static boolean isSticky(int result) {
        return switch (result) {
            case CUresult.CUDA_ERROR_ILLEGAL_ADDRESS, CUresult.CUDA_ERROR_HARDWARE_STACK_ERROR,
                 CUresult.CUDA_ERROR_ILLEGAL_INSTRUCTION, CUresult.CUDA_ERROR_MISALIGNED_ADDRESS,
                 CUresult.CUDA_ERROR_INVALID_ADDRESS_SPACE, CUresult.CUDA_ERROR_INVALID_PC,
                 CUresult.CUDA_ERROR_LAUNCH_FAILED, CUresult.CUDA_ERROR_ECC_UNCORRECTABLE,
                 CUresult.CUDA_ERROR_NVLINK_UNCORRECTABLE -> true;
            default -> false;
        };
    }
}
