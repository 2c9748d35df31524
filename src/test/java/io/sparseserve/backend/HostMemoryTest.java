package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.OptionalLong;
import org.junit.jupiter.api.Test;

/** The host's memory as /proc/meminfo and the cgroup files say, and on this machine. */
class HostMemoryTest {
    private static final String MEMINFO = """
            MemTotal:       24576000 kB
            MemFree:         1000000 kB
            MemAvailable:   20000000 kB
            Buffers:           12345 kB
            """;

    @Test
    void physicalMemoryWithoutACgroupLimit() {
        HostMemory m = HostMemory.of(MEMINFO, List.of(new long[] {Long.MAX_VALUE & ~4095L, 5_000_000}));
        assertEquals(24_576_000L * 1024, m.totalBytes());
        assertEquals(20_000_000L * 1024, m.availableBytes());
        assertEquals("physical memory", m.limitedBy());
    }

    @Test
    void aCgroupLimitBelowTheRamBoundsBothTotalAndAvailable() {
        long limit = 4L << 30, usage = 3L << 30;
        HostMemory m = HostMemory.of(MEMINFO, List.of(new long[] {limit, usage}));
        assertEquals(limit, m.totalBytes());
        assertEquals(limit - usage, m.availableBytes());
        assertEquals("cgroup memory limit", m.limitedBy());
        // Over its limit (usage can briefly exceed it): nothing available, never negative.
        assertEquals(0, HostMemory.of(MEMINFO, List.of(new long[] {limit, limit + 1})).availableBytes());
    }

    @Test
    void cgroupFilesParse() {
        assertEquals(OptionalLong.empty(), HostMemory.parseLimit("max\n"));
        assertEquals(OptionalLong.empty(), HostMemory.parseLimit(null));
        assertEquals(OptionalLong.of(8589934592L), HostMemory.parseLimit("8589934592\n"));
    }

    @Test
    void thisMachine() {
        HostMemory m = HostMemory.read();
        assertTrue(m.totalBytes() > 0 && m.availableBytes() <= m.totalBytes(), m.toString());
    }
}
