package io.sparseserve.backend.cuda;

import static jcuda.driver.JCudaDriver.cuMemFreeHost;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import jcuda.Pointer;

/**
 * Page-locked host memory: asynchronous copies from and to it overlap with kernels and may sit before a graph
 * replay. Written and read through a little-endian ByteBuffer view.
 */
public final class PinnedBuffer implements AutoCloseable {
    private final Pointer pointer;
    private final long bytes;
    private final ByteBuffer view;
    private boolean closed;

    PinnedBuffer(Pointer pointer, long bytes) {
        if (bytes > Integer.MAX_VALUE) throw new IllegalArgumentException("pinned buffer of " + bytes + " bytes (max 2 GiB)");
        this.pointer = pointer;
        this.bytes = bytes;
        this.view = pointer.getByteBuffer(0, bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    Pointer pointer() {
        return pointer;
    }

    public long bytes() {
        return bytes;
    }

    /** The host view (little-endian, as the device reads it). */
    public ByteBuffer view() {
        return view;
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        Cu.check("cuMemFreeHost", cuMemFreeHost(pointer));
    }
}
