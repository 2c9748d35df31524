package io.sparseserve.backend.cuda;

import java.util.EnumMap;
import java.util.Map;

/**
 * Bytes held on one device per {@link MemoryKind}: what the {@code sparseserve.device.memory.used} gauge reports with
 * its {@code kind} tag. Plain bookkeeping, separate from the driver so that it is tested without a GPU.
 */
public final class MemoryLedger {
    private final EnumMap<MemoryKind, Long> used = new EnumMap<>(MemoryKind.class);
    private final EnumMap<MemoryKind, Long> peak = new EnumMap<>(MemoryKind.class);

    public MemoryLedger() {
        for (MemoryKind k : MemoryKind.values()) {
            used.put(k, 0L);
            peak.put(k, 0L);
        }
    }

    public synchronized void allocated(MemoryKind kind, long bytes) {
        if (bytes <= 0) throw new IllegalArgumentException("allocation of " + bytes + " bytes");
        long now = used.get(kind) + bytes;
        used.put(kind, now);
        peak.put(kind, Math.max(peak.get(kind), now));
    }

    public synchronized void freed(MemoryKind kind, long bytes) {
        long now = used.get(kind) - bytes;
        if (bytes <= 0 || now < 0) {
            throw new IllegalStateException("freeing " + bytes + " bytes of " + kind.tag() + " but " + used.get(kind) + " are held");
        }
        used.put(kind, now);
    }

    public synchronized long used(MemoryKind kind) {
        return used.get(kind);
    }

    public synchronized long peak(MemoryKind kind) {
        return peak.get(kind);
    }

    public synchronized long total() {
        return used.values().stream().mapToLong(Long::longValue).sum();
    }

    /** A copy of the bytes held per kind. */
    public synchronized Map<MemoryKind, Long> snapshot() {
        return new EnumMap<>(used);
    }
}
