package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.model.ModelConfig;
import org.junit.jupiter.api.Test;

/** KV blocks from device memory and from budgets: the arithmetic a GPU runner relies on, checked without one. */
class KvSizingTest {
    private static final long GIB = 1L << 30;

    @Test
    void bytesPerTokenAndBlockFollowTheLayersKvWidthAndDtype() {
        // kdoc-llama-5m: 6 layers, 4 KV heads of 32: keys and values of 128 floats per layer.
        ModelConfig c = ModelConfig.read(TestData.bundledModel());
        assertEquals(2L * 6 * 128 * 4, KvSizing.bytesPerToken(c, KvDtype.F32));
        assertEquals(2L * 6 * 128 * 2, KvSizing.bytesPerToken(c, KvDtype.BF16));
        assertEquals(16 * 2L * 6 * 128 * 2, KvSizing.bytesPerBlock(c, 16, KvDtype.BF16));
        assertEquals(8, KvSizing.blocksFor(128, 16));
        assertEquals(9, KvSizing.blocksFor(129, 16));
    }

    @Test
    void gpuBlocksFillWhatTheUtilizationLeavesAfterWeightsWorkspaceAndActivations() {
        // An 80 GiB card with 1 GiB held by others; 0.9 of it is 72 GiB, less 1 GiB = 71 GiB for us.
        var b = new KvSizing.DeviceBudget(80 * GIB, 79 * GIB, 0.9, 14 * GIB, GIB, GIB / 2);
        assertEquals((long) Math.floor(80 * GIB * 0.9) - GIB, b.allowedBytes());
        long perBlock = 2L * 1024 * 1024; // Llama-2-7B, BF16, 16 positions: 2 x 32 layers x 4096 x 2 bytes x 16
        long expected = (b.allowedBytes() - 14 * GIB - GIB - GIB / 2) / perBlock;
        assertEquals(expected, KvSizing.gpuBlocks("--device cuda:0", b, perBlock, 256, Integer.MAX_VALUE));
        assertEquals(1000, KvSizing.gpuBlocks("--device cuda:0", b, perBlock, 256, 1000), "capped");
    }

    @Test
    void aModelThatDoesNotFitSaysHowMuchItNeedsAndHowMuchIsFree() {
        var b = new KvSizing.DeviceBudget(16 * GIB, 16 * GIB, 0.5, 7 * GIB, GIB / 2, GIB / 2);
        long perBlock = 2L * 1024 * 1024;
        DeviceUnavailableException e = assertThrows(DeviceUnavailableException.class,
                () -> KvSizing.gpuBlocks("--device cuda:0", b, perBlock, 256, Integer.MAX_VALUE));
        assertEquals("--device cuda:0: the model needs 8.50 GiB (weights 7.00 GiB, workspace and activations 1.00 GiB, "
                + "KV for one full-length sequence 0.50 GiB), 8.00 GiB free at --gpu-memory-utilization 0.5", e.getMessage());
        // Others holding memory count against the share too.
        var crowded = new KvSizing.DeviceBudget(16 * GIB, 2 * GIB, 0.9, 0, 0, 0);
        assertEquals((long) Math.floor(16 * GIB * 0.9) - 14 * GIB, crowded.allowedBytes(), "0.4 GiB: 14.4 less the 14 held");
        assertEquals(204, KvSizing.gpuBlocks("--device cuda:0", crowded, perBlock, 1, Integer.MAX_VALUE));
        assertThrows(DeviceUnavailableException.class, () -> KvSizing.gpuBlocks("--device cuda:0", crowded, perBlock, 256, 1000));
        var full = new KvSizing.DeviceBudget(16 * GIB, GIB, 0.9, 0, 0, 0);
        assertEquals(0, full.allowedBytes(), "others hold more than the share");
    }

    @Test
    void exactAndCpuCapacities() {
        assertEquals(7, KvSizing.exactBlocks(new KvCapacity.Blocks(7), 1000));
        assertEquals(3, KvSizing.exactBlocks(new KvCapacity.Bytes(3999), 1000));
        assertEquals(1, KvSizing.exactBlocks(new KvCapacity.Bytes(10), 1000), "at least one block");
        var auto = new KvCapacity.Auto(4, 100); // 4 sequences of 7 blocks of 16
        assertEquals(28, KvSizing.cpuAutoBlocks(auto, 16, 1000, 1L << 40), "enough for every sequence");
        assertEquals(10, KvSizing.cpuAutoBlocks(auto, 16, 1000, 20_000), "half the memory available");
        assertEquals(7, KvSizing.cpuAutoBlocks(auto, 16, 1000, 0), "at least one full sequence");
    }

    @Test
    void theCpuFitCheckCountsWeightsKvAndTheHeapLimitAgainstTheHostsMemory() {
        HostMemory host = new HostMemory(24L << 30, 20L << 30, "physical memory");
        // Fits: 4 + 16 + 2 GiB of 24.
        KvSizing.checkHostFit(4L << 30, 16L << 30, 1024, 16, KvDtype.F32, 2L << 30, host);
        // A Llama 3.1 8B-shaped 131,072-position sequence in f32 KV: 32 GiB (2 x 32 layers x 1024 x 4 bytes a token).
        long kv = 131_072L * 2 * 32 * 1024 * 4;
        DeviceUnavailableException e = assertThrows(DeviceUnavailableException.class,
                () -> KvSizing.checkHostFit(16L << 30, kv, 8192, 16, KvDtype.F32, 2L << 30, host));
        assertEquals("cpu: the model needs 50.00 GiB (weights 16.00 GiB, KV cache 32.00 GiB = 8192 blocks of 16 positions "
                + "in f32, Java heap limit 2.00 GiB), this machine has 24.00 GiB (physical memory); lower --max-model-len "
                + "(or --kv-cache-bytes), or use --kv-dtype bf16", e.getMessage());
        HostMemory container = new HostMemory(8L << 30, 1L << 30, "cgroup memory limit");
        assertTrue(assertThrows(DeviceUnavailableException.class,
                () -> KvSizing.checkHostFit(1L << 30, 6L << 30, 10, 16, KvDtype.BF16, 2L << 30, container))
                .getMessage().contains("this machine has 8.00 GiB (cgroup memory limit)"));
    }
}
