package io.sparseserve.backend.cuda;

/**
 * A device allocation that does not fit. The message says how much was asked, what it was for, and how much is free,
 * so that the CLI can print it as the one line it exits 2 with.
 */
public final class DeviceOutOfMemoryException extends RuntimeException {
    private final long requested;
    private final long free;

    public DeviceOutOfMemoryException(String what, long requested, long free, long total) {
        super("out of GPU memory: " + what + " needs " + Bytes.human(requested) + ", " + Bytes.human(free) + " free of "
                + Bytes.human(total));
        this.requested = requested;
        this.free = free;
    }

    public long requested() {
        return requested;
    }

    public long free() {
        return free;
    }
}
