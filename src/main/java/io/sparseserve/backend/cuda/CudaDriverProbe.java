package io.sparseserve.backend.cuda;

import io.sparseserve.backend.DeviceUnavailableException;
import jcuda.driver.CUresult;
import jcuda.driver.JCudaDriver;

/**
 * Whether a CUDA driver is here, asked through JCuda once per process: JCuda's driver library links against
 * {@code libcuda.so.1}, so loading it fails without a driver ({@link UnsatisfiedLinkError} from the class's static
 * initialiser, {@link NoClassDefFoundError} on every later use); with a driver, {@code cuInit} fails without a device
 * (or with the toolkit's stub library). Each failure becomes one line for the user.
 */
public final class CudaDriverProbe {
    private CudaDriverProbe() {}

    /** The outcome: the number of devices, or why there is no usable driver. */
    public record Result(int devices, String problem) {
        public boolean available() {
            return problem == null;
        }
    }

    private static Result result;

    /** Loads the driver and counts the devices, once; never throws. */
    public static synchronized Result probe() {
        if (result == null) result = load();
        return result;
    }

    /**
     * Checks that {@code ordinal} names a device; throws {@link DeviceUnavailableException} naming what is missing
     * (the driver, any device, or this ordinal) with {@code option} ("--device cuda:1") first.
     */
    public static void require(String option, int ordinal) {
        Result r = probe();
        if (!r.available()) throw new DeviceUnavailableException(option + ": " + r.problem());
        if (ordinal >= r.devices()) {
            throw new DeviceUnavailableException(option + ": no CUDA device " + ordinal + " (this machine has " + r.devices()
                    + (r.devices() == 1 ? " device, ordinal 0)" : " devices, ordinals 0-" + (r.devices() - 1) + ")"));
        }
    }

    private static Result load() {
        int init;
        try {
            init = JCudaDriver.cuInit(0);
        } catch (UnsatisfiedLinkError | NoClassDefFoundError | ExceptionInInitializerError e) {
            return new Result(0, "no CUDA driver: " + driverReason(e));
        }
        if (init != CUresult.CUDA_SUCCESS) {
            return new Result(0, "no usable CUDA driver or device: cuInit failed with " + CUresult.stringFor(init));
        }
        int[] count = new int[1];
        int r = JCudaDriver.cuDeviceGetCount(count);
        if (r != CUresult.CUDA_SUCCESS) return new Result(0, "cuDeviceGetCount failed with " + CUresult.stringFor(r));
        if (count[0] == 0) return new Result(0, "the CUDA driver sees no device");
        return new Result(count[0], null);
    }

    /**
     * The line of JCuda's long loading report that names the missing library ("libcuda.so.1: cannot open shared
     * object file"), or a summary when there is none.
     */
    static String driverReason(Throwable e) {
        String message = e.getMessage() == null ? "" : e.getMessage();
        for (String line : message.split("\n")) {
            int i = line.indexOf("libcuda.so");
            if (i >= 0) return line.substring(i).strip() + " (JCuda's driver library needs it)";
        }
        return "libcuda.so.1 is not loadable (JCuda's driver library failed to load: " + e.getClass().getSimpleName() + ")";
    }
}
