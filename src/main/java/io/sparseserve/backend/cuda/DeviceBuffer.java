package io.sparseserve.backend.cuda;

/**
 * One plain device allocation (cuMemAlloc, never managed memory): its address, size and what it holds. Freed by
 * {@link DeviceMemory#free}.
 */
public record DeviceBuffer(long address, long bytes, MemoryKind kind) {
    public DeviceBuffer {
        if (address == 0) throw new IllegalArgumentException("null device address");
        if (bytes <= 0) throw new IllegalArgumentException("device buffer of " + bytes + " bytes");
    }

    /** The address {@code offset} bytes in, checked against the size. */
    public long at(long offset) {
        if (offset < 0 || offset > bytes) throw new IndexOutOfBoundsException("offset " + offset + " in a buffer of " + bytes + " bytes");
        return address + offset;
    }

    /** The JCuda pointer to this buffer's start. */
    public DevicePtr ptr() {
        return DevicePtr.of(address);
    }
}
