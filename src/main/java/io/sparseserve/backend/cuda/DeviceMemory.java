package io.sparseserve.backend.cuda;

import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;

import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUresult;

/**
 * Plain device allocations (cuMemAlloc; never managed memory, whose page faults would stall kernels and break graph
 * capture) with the bytes held per kind in a {@link MemoryLedger}. Callers allocate up front (weights at load, KV
 * blocks and workspaces before the first step) so that no step allocates and decode steps can be captured.
 */
public final class DeviceMemory {
    private final MemoryLedger ledger = new MemoryLedger();

    /** Allocates {@code bytes} for {@code what} (named in the out-of-memory message). */
    public DeviceBuffer allocate(MemoryKind kind, long bytes, String what) {
        if (bytes <= 0) throw new IllegalArgumentException(what + ": allocation of " + bytes + " bytes");
        CUdeviceptr p = new CUdeviceptr();
        int rc = cuMemAlloc(p, bytes);
        if (rc == CUresult.CUDA_ERROR_OUT_OF_MEMORY) {
            long[] info = info();
            throw new DeviceOutOfMemoryException(what, bytes, info[0], info[1]);
        }
        Cu.check("cuMemAlloc(" + bytes + " bytes for " + what + ")", rc);
        ledger.allocated(kind, bytes);
        return new DeviceBuffer(DevicePtr.addressOf(p), bytes, kind);
    }

    public void free(DeviceBuffer b) {
        Cu.check("cuMemFree", cuMemFree(b.ptr()));
        ledger.freed(b.kind(), b.bytes());
    }

    /** {free, total} bytes of the current context's device (cuMemGetInfo). */
    public long[] info() {
        long[] free = new long[1], total = new long[1];
        Cu.check("cuMemGetInfo", cuMemGetInfo(free, total));
        return new long[] {free[0], total[0]};
    }

    public MemoryLedger ledger() {
        return ledger;
    }
}
