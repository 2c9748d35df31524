package io.sparseserve.backend;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.model.InvalidInputException;
import org.junit.jupiter.api.Test;

/** {@code --device}, {@code --kv-dtype}, {@code --sparse-kernel} and {@code --gpu-memory-utilization} values. */
class DeviceTest {

    @Test
    void parsesEveryAcceptedForm() {
        assertEquals(Device.CPU, Device.parse("cpu"));
        assertEquals(new Device(Device.Kind.CUDA, new int[] {0}), Device.parse("cuda"));
        assertEquals(3, Device.parse("cuda:3").ordinal());
        assertArrayEquals(new int[] {0, 2, 1}, Device.parse("cuda:0,2,1").ordinals());
        for (String s : new String[] {"cpu", "cuda:0", "cuda:7", "cuda:0,1"}) assertEquals(s, Device.parse(s).toString());
        assertEquals("cuda:0", Device.parse("cuda").toString());
    }

    @Test
    void refusesBadSpecsWithOneLineNamingTheOption() {
        for (String s : new String[] {"", "gpu", "CUDA", "cuda:", "cuda:-1", "cuda:a", "cuda:1,", "cuda:,1", "cuda:99999",
                "cpu:0", "cuda:0;1", "cuda 0"}) {
            InvalidInputException e = assertThrows(InvalidInputException.class, () -> Device.parse(s), s);
            assertTrue(e.getMessage().startsWith("--device must be cpu, cuda, cuda:N or cuda:N,M,..."), e.getMessage());
            assertEquals(1, e.getMessage().lines().count());
        }
        // An ordinal may repeat: cuda:0,0 is two stages of a layer split on one GPU.
        Device twice = Device.parse("cuda:1,1");
        assertArrayEquals(new int[] {1, 1}, twice.ordinals());
        assertTrue(twice.isSplit());
        assertEquals("cuda:1", twice.stage(1).toString());
        assertTrue(!Device.parse("cuda:1").isSplit());
    }

    @Test
    void kvDtypeDefaultsPerDeviceAndTheCpuHoldsBf16AtHalfTheBytes() {
        DeviceOptions defaults = DeviceOptions.defaults();
        assertEquals(KvDtype.F32, defaults.kvDtypeFor(Device.CPU));
        assertEquals(KvDtype.BF16, defaults.kvDtypeFor(Device.parse("cuda:1")));
        assertEquals(KvDtype.F32, new DeviceOptions(KvDtype.F32, 0.9, SparseKernel.AUTO).kvDtypeFor(Device.parse("cuda")));
        RunnerConfig four = new RunnerConfig(16, 2, 16, new KvCapacity.Blocks(4));
        try (io.sparseserve.model.Model m = io.sparseserve.model.Model.load(io.sparseserve.TestData.bundledModel());
             ModelRunner bf16 = ModelRunners.factory(Device.CPU, new DeviceOptions(KvDtype.BF16, 0.9, SparseKernel.AUTO)).open(m, four);
             ModelRunner f32 = ModelRunners.factory(Device.CPU, defaults).open(m, four)) {
            assertEquals(KvDtype.BF16, bf16.kvDtype());
            assertEquals(KvDtype.F32, f32.kvDtype());
            assertEquals(4 * KvSizing.bytesPerBlock(m.config(), 16, KvDtype.BF16), bf16.memory().kv());
            assertEquals(2 * bf16.memory().kv(), f32.memory().kv(), "bf16 KV holds half the bytes of f32");
        }
        assertEquals(KvDtype.BF16, KvDtype.parse("bf16"));
        assertEquals("--kv-dtype must be bf16 or f32, got 'f16'",
                assertThrows(InvalidInputException.class, () -> KvDtype.parse("f16")).getMessage());
    }

    @Test
    void aLayerSplitIsCheckedAgainstTheDevicesBeforeTheDriver() {
        DeviceOptions threeStages = new DeviceOptions(null, 0.9, SparseKernel.AUTO, LayerSplit.parse("2,2,2"));
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> ModelRunners.factory(Device.parse("cuda:0,1"), threeStages));
        assertEquals("--layer-split 2,2,2 has 3 layer counts for --device cuda:0,1 (2 devices): give one per device", e.getMessage());
        InvalidInputException cpu = assertThrows(InvalidInputException.class,
                () -> ModelRunners.factory(Device.CPU, new DeviceOptions(null, 0.9, SparseKernel.AUTO, LayerSplit.parse("3"))));
        assertEquals("--layer-split needs several GPUs (--device cuda:N,M,...), not --device cpu", cpu.getMessage());
        if (!io.sparseserve.backend.cuda.CudaDriverProbe.probe().available()) {
            // A matching split gets as far as the driver: here, none.
            DeviceUnavailableException d = assertThrows(DeviceUnavailableException.class, () -> ModelRunners.factory(
                    Device.parse("cuda:0,0"), new DeviceOptions(null, 0.9, SparseKernel.AUTO, LayerSplit.parse("3,3"))));
            assertTrue(d.getMessage().startsWith("--device cuda:0,0: "), d.getMessage());
        }
    }

    @Test
    void utilizationAndSparseKernelAreChecked() {
        for (double u : new double[] {0, -0.1, 1.01, Double.NaN}) {
            InvalidInputException e = assertThrows(InvalidInputException.class,
                    () -> new DeviceOptions(null, u, SparseKernel.AUTO));
            assertTrue(e.getMessage().startsWith("--gpu-memory-utilization must be in (0, 1]"), e.getMessage());
        }
        assertEquals(1.0, new DeviceOptions(null, 1.0, SparseKernel.OWN).gpuMemoryUtilization());
        assertEquals(SparseKernel.CUSPARSE, SparseKernel.parse("cusparse"));
        assertEquals("--sparse-kernel must be auto, own, cusparse or dense, got 'csr'",
                assertThrows(InvalidInputException.class, () -> SparseKernel.parse("csr")).getMessage());
    }
}
