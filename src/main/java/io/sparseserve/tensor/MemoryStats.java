package io.sparseserve.tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Process memory as the operating system sees it (mapped weights count once paged in). */
public final class MemoryStats {
    private MemoryStats() {}

    /** Resident set size in bytes from /proc/self/status, or -1 where that file does not exist. */
    public static long residentBytes() {
        return statusKb("VmRSS:");
    }

    /** The peak resident set size of the process so far ("high water mark"), or -1 where unknown. */
    public static long peakResidentBytes() {
        return statusKb("VmHWM:");
    }

    private static long statusKb(String field) {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field)) {
                    String kb = line.substring(field.length()).trim().split("\\s+")[0];
                    return Long.parseLong(kb) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
