package io.sparseserve.backend.cuda;

/** What a device allocation holds: the {@code kind} tag of the device memory gauges. */
public enum MemoryKind {
    WEIGHTS, KV, WORKSPACE;

    /** The tag value: lower case, as the other tags are. */
    public String tag() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
