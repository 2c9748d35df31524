package io.sparseserve.tensor;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Process memory as the operating system sees it (mapped weights count once paged in). */
public final class MemoryStats {
    private MemoryStats() {}

    /** Resident set size in bytes from /proc/self/status, or -1 where that file does not exist. */
    public static long residentBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    String kb = line.substring(6).trim().split("\\s+")[0];
                    return Long.parseLong(kb) * 1024;
                }
            }
        } catch (IOException | RuntimeException e) {
            return -1;
        }
        return -1;
    }
}
