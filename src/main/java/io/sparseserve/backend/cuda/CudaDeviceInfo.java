package io.sparseserve.backend.cuda;

/**
 * What the backend needs to know about a device: its name, compute capability (sm_XY), multiprocessors, memory and
 * caches. The peak DRAM bandwidth from clock and bus width is only a label; speed claims use the copy bandwidth
 * measured in the same run.
 */
public record CudaDeviceInfo(int ordinal, String name, int ccMajor, int ccMinor, int multiprocessors, long totalMemory,
                             int l2Bytes, int maxSharedPerBlockOptin, int memoryClockKHz, int busWidthBits,
                             int driverVersion) {

    /** e.g. "sm_90". */
    public String arch() {
        return "sm_" + ccMajor + ccMinor;
    }

    /** Theoretical DRAM bandwidth (double data rate): clock x 2 x bus width / 8, in bytes per second. */
    public double peakDramBytesPerSecond() {
        return memoryClockKHz * 1e3 * 2 * busWidthBits / 8.0;
    }

    /** "CUDA 13.0" from the driver's 13000. */
    public String driverApi() {
        return "CUDA " + driverVersion / 1000 + "." + driverVersion % 1000 / 10;
    }

    @Override
    public String toString() {
        return "cuda:" + ordinal + " " + name + " (" + arch() + ", " + multiprocessors + " SMs, "
                + Bytes.human(totalMemory) + ", driver " + driverApi() + ")";
    }
}
