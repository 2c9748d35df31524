package io.sparseserve.backend;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;

/**
 * The memory this process may use on the host, for the CPU runner's KV sizing and its start-up fit check: the
 * machine's RAM or the cgroup's limit, whichever is smaller (a container sees the host's RAM in /proc/meminfo but is
 * killed at its cgroup's limit), and what is available of it now.
 *
 * @param totalBytes physical RAM ({@code MemTotal}), or the cgroup's memory limit when smaller
 * @param availableBytes what a new allocation can get now without swapping: {@code MemAvailable} (free memory plus
 *        the page cache the kernel can drop), or the cgroup's limit less its usage when smaller
 * @param limitedBy where totalBytes comes from: "physical memory" or "cgroup memory limit"
 */
public record HostMemory(long totalBytes, long availableBytes, String limitedBy) {

    /** A cgroup without a limit reports "max" (v2) or a page-rounded 2^63 - 1 (v1): anything this large is none. */
    private static final long NO_LIMIT = 1L << 60;

    public HostMemory {
        if (totalBytes <= 0 || availableBytes < 0) throw new IllegalArgumentException("host memory " + totalBytes + ", " + availableBytes);
        availableBytes = Math.min(availableBytes, totalBytes);
    }

    /** Reads /proc/meminfo and this process's cgroup (v2, else v1); where those are missing, the JVM's view. */
    public static HostMemory read() {
        String meminfo = readOrNull(Path.of("/proc/meminfo"));
        List<long[]> cgroups = new ArrayList<>();
        String self = readOrNull(Path.of("/proc/self/cgroup"));
        for (Path dir : cgroupDirs(self)) {
            OptionalLong limit = parseLimit(readOrNull(dir.resolve("memory.max")));
            OptionalLong usage = parseLimit(readOrNull(dir.resolve("memory.current")));
            if (limit.isEmpty()) {
                limit = parseLimit(readOrNull(dir.resolve("memory.limit_in_bytes")));
                usage = parseLimit(readOrNull(dir.resolve("memory.usage_in_bytes")));
            }
            if (limit.isPresent()) cgroups.add(new long[] {limit.getAsLong(), usage.orElse(0)});
        }
        return of(meminfo, cgroups);
    }

    /**
     * From the text of /proc/meminfo (null: ask the JVM) and the cgroups' [limit, usage] pairs found (the smallest
     * limit counts).
     */
    static HostMemory of(String meminfo, List<long[]> cgroups) {
        long total = -1, available = -1;
        if (meminfo != null) {
            total = meminfoKb(meminfo, "MemTotal:") * 1024;
            available = meminfoKb(meminfo, "MemAvailable:") * 1024;
            if (available < 0) available = meminfoKb(meminfo, "MemFree:") * 1024;
        }
        if (total <= 0 || available < 0) {
            var os = ManagementFactory.getPlatformMXBean(com.sun.management.OperatingSystemMXBean.class);
            total = os.getTotalMemorySize();
            available = os.getFreeMemorySize();
        }
        String by = "physical memory";
        for (long[] c : cgroups) {
            long limit = c[0], usage = c[1];
            if (limit <= 0 || limit >= NO_LIMIT) continue;
            if (limit < total) {
                total = limit;
                by = "cgroup memory limit";
            }
            available = Math.min(available, Math.max(0, limit - usage));
        }
        return new HostMemory(total, available, by);
    }

    /** A cgroup file's number; "max", a missing file or nonsense: empty. */
    static OptionalLong parseLimit(String text) {
        if (text == null) return OptionalLong.empty();
        String s = text.strip();
        if (s.isEmpty() || s.equals("max")) return OptionalLong.empty();
        try {
            return OptionalLong.of(Long.parseLong(s));
        } catch (NumberFormatException e) {
            return OptionalLong.empty();
        }
    }

    private static long meminfoKb(String meminfo, String key) {
        for (String line : meminfo.split("\n")) {
            if (!line.startsWith(key)) continue;
            String[] parts = line.substring(key.length()).strip().split("\\s+");
            try {
                return Long.parseLong(parts[0]);
            } catch (NumberFormatException e) {
                return -1;
            }
        }
        return -1;
    }

    /**
     * The memory controller's folders of this process: v2 ("0::/path" under /sys/fs/cgroup), v1 ("N:memory:/path"
     * under /sys/fs/cgroup/memory), each also at the mount's root (a container usually sees its own cgroup there).
     */
    private static List<Path> cgroupDirs(String self) {
        List<Path> dirs = new ArrayList<>();
        if (self != null) {
            for (String line : self.split("\n")) {
                String[] f = line.split(":", 3);
                if (f.length < 3) continue;
                String rel = f[2].startsWith("/") ? f[2].substring(1) : f[2];
                if (f[0].equals("0") && f[1].isEmpty()) dirs.add(Path.of("/sys/fs/cgroup").resolve(rel));
                if (List.of(f[1].split(",")).contains("memory")) dirs.add(Path.of("/sys/fs/cgroup/memory").resolve(rel));
            }
        }
        dirs.add(Path.of("/sys/fs/cgroup"));
        dirs.add(Path.of("/sys/fs/cgroup/memory"));
        return dirs;
    }

    private static String readOrNull(Path p) {
        try {
            return Files.isReadable(p) ? Files.readString(p) : null;
        } catch (IOException | RuntimeException e) {
            // An unreadable /proc or cgroup file means that source is absent: the JVM's view is the fallback.
            return null;
        }
    }
}
