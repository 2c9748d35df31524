package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;
import org.junit.jupiter.api.Test;

/** The host-side pieces of the CUDA wrapper that need no GPU: addresses, errors, launch shapes, accounting. */
class CudaHostTest {

    @Test
    void devicePointersCarryRawAddressesBothWays() {
        long a = 0x7f12_3456_7800L;
        DevicePtr p = DevicePtr.of(a);
        assertEquals(a, p.address());
        assertEquals(a, DevicePtr.addressOf(p));
        // An offset pointer made by JCuda keeps base + offset.
        CUdeviceptr shifted = p.withByteOffset(4096);
        assertEquals(a + 4096, DevicePtr.addressOf(shifted));
        assertEquals(a + 24, new DeviceBuffer(a, 64, MemoryKind.KV).at(24));
        assertThrows(IndexOutOfBoundsException.class, () -> new DeviceBuffer(a, 64, MemoryKind.KV).at(65));
    }

    @Test
    void errorsNameTheCallAndStickyOnesAreFatal() {
        CudaException e = assertThrows(CudaException.class, () -> Cu.check("cuLaunchKernel(rms_norm)", CUresult.CUDA_ERROR_ILLEGAL_ADDRESS));
        assertTrue(e.getMessage().startsWith("cuLaunchKernel(rms_norm) failed: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), e.getMessage());
        assertTrue(e.sticky());
        CudaException oom = assertThrows(CudaException.class, () -> Cu.check("cuMemAlloc", CUresult.CUDA_ERROR_OUT_OF_MEMORY));
        assertFalse(oom.sticky());
        assertTrue(Cu.isSticky(CUresult.CUDA_ERROR_ECC_UNCORRECTABLE));
        assertFalse(Cu.isSticky(CUresult.CUDA_ERROR_INVALID_VALUE));
        Cu.check("cuInit", CUresult.CUDA_SUCCESS);
    }

    @Test
    void launchShapesAreValidated() {
        assertEquals(3, LaunchShape.blocksFor(513, 256));
        assertEquals(1, LaunchShape.blocksFor(0, 256));
        assertThrows(IllegalArgumentException.class, () -> LaunchShape.of(1, 2048));
        assertThrows(IllegalArgumentException.class, () -> new LaunchShape(1, 70000, 1, 32, 1, 1, 0));
        assertEquals(4096, LaunchShape.of(4096, 1, 128, 0).gridX());
    }

    @Test
    void ledgerAccountsBytesPerKind() {
        MemoryLedger l = new MemoryLedger();
        l.allocated(MemoryKind.WEIGHTS, 1000);
        l.allocated(MemoryKind.KV, 300);
        l.allocated(MemoryKind.KV, 200);
        l.freed(MemoryKind.KV, 300);
        assertEquals(1000, l.used(MemoryKind.WEIGHTS));
        assertEquals(200, l.used(MemoryKind.KV));
        assertEquals(500, l.peak(MemoryKind.KV));
        assertEquals(1200, l.total());
        assertThrows(IllegalStateException.class, () -> l.freed(MemoryKind.WORKSPACE, 1));
        assertEquals("workspace", MemoryKind.WORKSPACE.tag());
    }

    @Test
    void outOfMemorySaysNeededAndFree() {
        var e = new DeviceOutOfMemoryException("weights of layer 3", 3L << 30, 512L << 20, 80L << 30);
        assertEquals("out of GPU memory: weights of layer 3 needs 3.00 GiB, 512 MiB free of 80.0 GiB", e.getMessage());
    }

    /** Where this machine has no CUDA driver (CI), opening a device is one clear line, not a stack trace. */
    @Test
    void withoutDriverOpeningSaysWhatIsMissing() {
        try (CudaContext ctx = CudaContext.open(0)) {
            System.out.println("CUDA present here: " + ctx.info() + "; the no-driver message is not checked");
        } catch (CudaUnavailableException e) {
            assertTrue(e.getMessage().startsWith("--device cuda"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            System.out.println("without a GPU: " + e.getMessage());
        }
    }
}
