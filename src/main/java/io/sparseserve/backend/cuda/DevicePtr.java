package io.sparseserve.backend.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A device address that JCuda calls accept and FFM downcalls can read. JCuda keeps the raw address of a
 * {@link CUdeviceptr} behind protected members ({@code getNativePointer()}, {@code getByteOffset()}), which only a
 * subclass can reach on itself; so device memory is carried around as plain {@code long} addresses (kernel
 * arguments, cuBLAS by FFM) and wrapped here for the JCuda calls that want objects. JCuda's native side reads a
 * pointer argument as native pointer + byte offset, so an address is represented as offset {@code address} from a
 * null pointer.
 */
public final class DevicePtr extends CUdeviceptr {

    private DevicePtr(CUdeviceptr base, long byteOffset) {
        super(base, byteOffset);
    }

    private DevicePtr(CUdeviceptr copy) {
        super(copy);
    }

    /** The JCuda pointer for raw device address {@code address}. */
    public static DevicePtr of(long address) {
        return new DevicePtr(new CUdeviceptr(), address);
    }

    /** The raw address of this pointer. */
    public long address() {
        return getNativePointer() + getByteOffset();
    }

    /** The raw address of a pointer JCuda filled in (cuMemAlloc) or offset. */
    public static long addressOf(CUdeviceptr p) {
        return p instanceof DevicePtr d ? d.address() : new DevicePtr(p).address();
    }
}
