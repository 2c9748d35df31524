package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.model.ModelConfig;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * KV blocks of a layer split ({@link KvSizing#stageBlocks}): every stage holds the same number of blocks of its own
 * layers; stages on one device share its budget; the split holds the fewest any device allows.
 */
class KvStageSizingTest {
    private static final long GIB = 1L << 30;
    private static final ModelConfig C = io.sparseserve.model.ModelConfig.read(TestData.bundledModel()); // 6 layers
    private static final int BLOCK = 16;

    private static long perBlock(int layers) {
        return KvSizing.bytesPerBlock(C, layers, BLOCK, KvDtype.BF16);
    }

    @Test
    void perStageBlockBytesAddUpToTheWholeModels() {
        assertEquals(KvSizing.bytesPerBlock(C, BLOCK, KvDtype.BF16), perBlock(2) + perBlock(4));
        assertEquals(2L * 2 * C.kvDim() * 2 * BLOCK, perBlock(2));
    }

    @Test
    void oneStageIsTheSingleGpuSizing() {
        var s = new KvSizing.StageMemory(0, C.layers(), 80 * GIB, 79 * GIB, 3 * GIB, GIB);
        int blocks = KvSizing.stageBlocks(List.of(s), 0.9, C, BLOCK, KvDtype.BF16, 1, Integer.MAX_VALUE);
        int single = KvSizing.gpuBlocks("cuda:0", new KvSizing.DeviceBudget(80 * GIB, 79 * GIB, 0.9, 3 * GIB, GIB, 0),
                KvSizing.bytesPerBlock(C, BLOCK, KvDtype.BF16), 1, Integer.MAX_VALUE);
        assertEquals(single, blocks);
    }

    @Test
    void stagesOnOneDeviceShareItsBudget() {
        // cuda:0,0 with 2 + 4 layers: the device's room is split over the blocks of both stages = one whole model's.
        var a = new KvSizing.StageMemory(0, 2, 80 * GIB, 80 * GIB, 2 * GIB, GIB);
        var b = new KvSizing.StageMemory(0, 4, 80 * GIB, 80 * GIB, 3 * GIB, GIB);
        int blocks = KvSizing.stageBlocks(List.of(a, b), 0.5, C, BLOCK, KvDtype.BF16, 1, Integer.MAX_VALUE);
        long room = 40 * GIB - 7 * GIB;
        assertEquals(room / (perBlock(2) + perBlock(4)), blocks);
    }

    @Test
    void theSplitHoldsWhatItsFullestDeviceAllows() {
        // cuda:0,1: device 0 has less free (another process holds 40 GiB) and fewer layers.
        var a = new KvSizing.StageMemory(0, 2, 80 * GIB, 40 * GIB, 30 * GIB, GIB);
        var b = new KvSizing.StageMemory(1, 4, 80 * GIB, 80 * GIB, 3 * GIB, GIB);
        int blocks = KvSizing.stageBlocks(List.of(a, b), 0.9, C, BLOCK, KvDtype.BF16, 1, Integer.MAX_VALUE);
        long room0 = (long) Math.floor(80 * GIB * 0.9) - 40 * GIB - 31 * GIB;
        long room1 = (long) Math.floor(80 * GIB * 0.9) - 4 * GIB;
        assertEquals(Math.min(room0 / perBlock(2), room1 / perBlock(4)), blocks);
        assertEquals(room0 / perBlock(2), blocks, "device 0 is the limit here");
        assertEquals(1000, KvSizing.stageBlocks(List.of(a, b), 0.9, C, BLOCK, KvDtype.BF16, 1, 1000), "capped");
    }

    @Test
    void aDeviceThatCannotHoldOneSequenceIsNamed() {
        var a = new KvSizing.StageMemory(0, 3, 8 * GIB, 8 * GIB, GIB, GIB);
        var b = new KvSizing.StageMemory(1, 3, 8 * GIB, 8 * GIB, 7 * GIB, GIB);
        DeviceUnavailableException e = assertThrows(DeviceUnavailableException.class,
                () -> KvSizing.stageBlocks(List.of(a, b), 0.9, C, BLOCK, KvDtype.BF16, 1, Integer.MAX_VALUE));
        assertTrue(e.getMessage().startsWith("cuda:1 (stage 1, 3 layers): the model needs "), e.getMessage());
        var c0 = new KvSizing.StageMemory(0, 3, 8 * GIB, 8 * GIB, 4 * GIB, GIB);
        var c1 = new KvSizing.StageMemory(0, 3, 8 * GIB, 8 * GIB, 4 * GIB, GIB);
        e = assertThrows(DeviceUnavailableException.class,
                () -> KvSizing.stageBlocks(List.of(c0, c1), 0.9, C, BLOCK, KvDtype.BF16, 1, Integer.MAX_VALUE));
        assertTrue(e.getMessage().startsWith("cuda:0 (stages 0,1, 6 layers): the model needs "), e.getMessage());
    }
}
