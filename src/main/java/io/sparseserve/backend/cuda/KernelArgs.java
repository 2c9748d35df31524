package io.sparseserve.backend.cuda;

import java.util.ArrayList;
import java.util.List;
import jcuda.NativePointerObject;
import jcuda.Pointer;

/**
 * The argument list of one kernel launch, in the kernel's parameter order (KERNELS.md): device addresses as 64-bit
 * values, ints, floats. cuLaunchKernel copies the values at launch (and graph capture records them), so one
 * KernelArgs may be refilled and reused.
 */
public final class KernelArgs {
    private final List<NativePointerObject> params = new ArrayList<>();

    public KernelArgs ptr(long deviceAddress) {
        params.add(Pointer.to(new long[] {deviceAddress}));
        return this;
    }

    public KernelArgs ptr(DeviceBuffer b) {
        return ptr(b.address());
    }

    public KernelArgs i32(int v) {
        params.add(Pointer.to(new int[] {v}));
        return this;
    }

    public KernelArgs i64(long v) {
        params.add(Pointer.to(new long[] {v}));
        return this;
    }

    public KernelArgs f32(float v) {
        params.add(Pointer.to(new float[] {v}));
        return this;
    }

    public int size() {
        return params.size();
    }

    /** The {@code void** kernelParams} of cuLaunchKernel. */
    Pointer pointer() {
        return Pointer.to(params.toArray(NativePointerObject[]::new));
    }
}
