package io.sparseserve.backend.cuda;

import static jcuda.driver.JCudaDriver.*;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUevent;
import jcuda.driver.CUevent_flags;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream_flags;
import jcuda.driver.JCudaDriver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One device's CUDA context (the device's primary context, the one the CUDA runtime, cuBLAS and cuSPARSE use too) and
 * the ONE stream that our kernels, cuBLAS and cuSPARSE all run on, so that their work is ordered without events and
 * a decode step can be captured as one graph. Every call's result is checked ({@link Cu#check}).
 *
 * <p>A context is current per thread: {@link #makeCurrent()} binds it to the calling thread (the engine's scheduler
 * thread calls it once; it is cheap to repeat).
 */
public final class CudaContext implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CudaContext.class);
    /** Host-to-device copies go in pieces: a ByteBuffer view of a segment holds at most 2^31 - 1 bytes. */
    private static final long COPY_CHUNK = 1L << 30;
    /** cuda.h's CUDA_ERROR_INSUFFICIENT_DRIVER (JCuda's CUresult lacks it). */
    private static final int CUDA_ERROR_INSUFFICIENT_DRIVER = 35;
    /** cuda.h's CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED: a second stage pair on the same two devices. */
    private static final int CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED = 704;

    private final CUdevice device;
    private final CUcontext context;
    private final CudaStream stream;
    private final CudaDeviceInfo info;
    private final DeviceMemory memory = new DeviceMemory();
    private boolean closed;

    private CudaContext(CUdevice device, CUcontext context, CudaStream stream, CudaDeviceInfo info) {
        this.device = device;
        this.context = context;
        this.stream = stream;
        this.info = info;
    }

    /**
     * Initialises the driver and opens device {@code ordinal}. Without a driver library, a device or that ordinal it
     * throws {@link CudaUnavailableException} with one line saying which.
     */
    public static CudaContext open(int ordinal) {
        int rc;
        try {
            rc = JCudaDriver.cuInit(0);
        } catch (LinkageError e) {
            throw new CudaUnavailableException("--device cuda: no CUDA driver (" + firstLine(e.getMessage())
                    + "); install the NVIDIA driver (libcuda.so.1) or use --device cpu", e);
        }
        if (rc == CUresult.CUDA_ERROR_NO_DEVICE) throw new CudaUnavailableException("--device cuda: the CUDA driver finds no GPU");
        if (rc != CUresult.CUDA_SUCCESS) {
            throw new CudaUnavailableException("--device cuda: cuInit failed: " + CUresult.stringFor(rc)
                    + (rc == CUDA_ERROR_INSUFFICIENT_DRIVER ? " (the driver is older than this CUDA version)" : ""));
        }
        int[] count = new int[1];
        Cu.check("cuDeviceGetCount", cuDeviceGetCount(count));
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new CudaUnavailableException("--device cuda:" + ordinal + ": there " + (count[0] == 1 ? "is 1 GPU" : "are " + count[0] + " GPUs")
                    + " (cuda:0" + (count[0] > 1 ? "..cuda:" + (count[0] - 1) : "") + ")");
        }
        CUdevice device = new CUdevice();
        Cu.check("cuDeviceGet", cuDeviceGet(device, ordinal));
        CUcontext context = new CUcontext();
        Cu.check("cuDevicePrimaryCtxRetain", cuDevicePrimaryCtxRetain(context, device));
        Cu.check("cuCtxSetCurrent", cuCtxSetCurrent(context));
        CudaStream stream = new CudaStream();
        // Non-blocking: our stream does not synchronise with the legacy default stream, which cuBLAS/cuSPARSE
        // would otherwise use if a handle were ever left without a stream.
        Cu.check("cuStreamCreate", cuStreamCreate(stream, CUstream_flags.CU_STREAM_NON_BLOCKING));
        CudaDeviceInfo info = describe(device, ordinal);
        log.info("CUDA device {}", info);
        return new CudaContext(device, context, stream, info);
    }

    private static CudaDeviceInfo describe(CUdevice device, int ordinal) {
        byte[] name = new byte[256];
        Cu.check("cuDeviceGetName", cuDeviceGetName(name, name.length, device));
        int len = 0;
        while (len < name.length && name[len] != 0) len++;
        long[] total = new long[1];
        Cu.check("cuDeviceTotalMem", cuDeviceTotalMem(total, device));
        int[] driver = new int[1];
        Cu.check("cuDriverGetVersion", cuDriverGetVersion(driver));
        return new CudaDeviceInfo(ordinal, new String(name, 0, len, java.nio.charset.StandardCharsets.UTF_8),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT), total[0],
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE),
                attribute(device, CUdevice_attribute.CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH), driver[0]);
    }

    private static int attribute(CUdevice device, int attribute) {
        int[] v = new int[1];
        Cu.check("cuDeviceGetAttribute(" + CUdevice_attribute.stringFor(attribute) + ")", cuDeviceGetAttribute(v, attribute, device));
        return v[0];
    }

    private static String firstLine(String s) {
        if (s == null) return "native library not loadable";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }

    public CudaDeviceInfo info() {
        return info;
    }

    public CudaStream stream() {
        return stream;
    }

    public DeviceMemory memory() {
        return memory;
    }

    /** Binds this context to the calling thread. */
    public void makeCurrent() {
        Cu.check("cuCtxSetCurrent", cuCtxSetCurrent(context));
    }

    /** Loads a fatbin/cubin/PTX image (cuModuleLoadData: the driver picks the SASS for this device or JITs the PTX). */
    public CUmodule loadModule(byte[] image) {
        CUmodule module = new CUmodule();
        Cu.check("cuModuleLoadData", cuModuleLoadData(module, image));
        return module;
    }

    public CUfunction function(CUmodule module, String name) {
        CUfunction f = new CUfunction();
        Cu.check("cuModuleGetFunction(" + name + ")", cuModuleGetFunction(f, module, name));
        return f;
    }

    /** Enqueues one kernel on the stream; {@code name} is only for the error message. */
    public void launch(String name, CUfunction f, LaunchShape s, KernelArgs args) {
        Cu.check("cuLaunchKernel(" + name + ")", cuLaunchKernel(f, s.gridX(), s.gridY(), s.gridZ(), s.blockX(), s.blockY(),
                s.blockZ(), s.sharedBytes(), stream, args.pointer(), null));
    }

    /** Copies a host segment (mapped weights, heap arrays) to {@code dst + offset}, synchronously, in 1 GiB pieces. */
    public void upload(MemorySegment src, DeviceBuffer dst, long offset) {
        long n = src.byteSize();
        if (offset < 0 || offset + n > dst.bytes()) {
            throw new IndexOutOfBoundsException(n + " bytes at offset " + offset + " into a buffer of " + dst.bytes());
        }
        for (long done = 0; done < n; done += COPY_CHUNK) {
            long len = Math.min(COPY_CHUNK, n - done);
            ByteBuffer view = src.asSlice(done, len).asByteBuffer();
            Cu.check("cuMemcpyHtoD", cuMemcpyHtoD(DevicePtr.of(dst.at(offset + done)), Pointer.to(view), len));
        }
    }

    /** Copies {@code bytes} from the device to a host segment, synchronously (waits for the stream first). */
    public void download(DeviceBuffer src, long offset, MemorySegment dst) {
        synchronize();
        long n = dst.byteSize();
        if (offset < 0 || offset + n > src.bytes()) {
            throw new IndexOutOfBoundsException(n + " bytes at offset " + offset + " from a buffer of " + src.bytes());
        }
        for (long done = 0; done < n; done += COPY_CHUNK) {
            long len = Math.min(COPY_CHUNK, n - done);
            ByteBuffer view = dst.asSlice(done, len).asByteBuffer();
            Cu.check("cuMemcpyDtoH", cuMemcpyDtoH(Pointer.to(view), DevicePtr.of(src.at(offset + done)), len));
        }
    }

    /** Enqueues a host-to-device copy from page-locked memory (graph inputs before a replay). */
    public void uploadAsync(PinnedBuffer src, long srcOffset, long dstAddress, long bytes) {
        Cu.check("cuMemcpyHtoDAsync", cuMemcpyHtoDAsync(DevicePtr.of(dstAddress), src.pointer().withByteOffset(srcOffset), bytes, stream));
    }

    /** Enqueues a device-to-host copy into page-locked memory; valid after {@link #synchronize()}. */
    public void downloadAsync(long srcAddress, PinnedBuffer dst, long dstOffset, long bytes) {
        Cu.check("cuMemcpyDtoHAsync", cuMemcpyDtoHAsync(dst.pointer().withByteOffset(dstOffset), DevicePtr.of(srcAddress), bytes, stream));
    }

    public void copy(long dstAddress, long srcAddress, long bytes) {
        Cu.check("cuMemcpyDtoDAsync", cuMemcpyDtoDAsync(DevicePtr.of(dstAddress), DevicePtr.of(srcAddress), bytes, stream));
    }

    /**
     * Enqueues on this stream a copy into another stage's buffer: a device-to-device copy when both are on this
     * device (cuda:0,0), else a peer copy (cuMemcpyPeerAsync: direct over NVLink/PCIe when peer access is on, staged
     * through the host by the driver otherwise).
     */
    public void copyTo(CudaContext dst, long dstAddress, long srcAddress, long bytes) {
        if (dst.info.ordinal() == info.ordinal()) {
            copy(dstAddress, srcAddress, bytes);
        } else {
            Cu.check("cuMemcpyPeerAsync", cuMemcpyPeerAsync(DevicePtr.of(dstAddress), dst.context, DevicePtr.of(srcAddress),
                    context, bytes, stream));
        }
    }

    /**
     * Lets this context read and write {@code peer}'s memory directly, where the hardware can (cuDeviceCanAccessPeer);
     * returns whether it can. The same device needs nothing (true).
     */
    public boolean enablePeerAccess(CudaContext peer) {
        if (peer.info.ordinal() == info.ordinal()) return true;
        int[] can = new int[1];
        Cu.check("cuDeviceCanAccessPeer", cuDeviceCanAccessPeer(can, device, peer.device));
        if (can[0] == 0) return false;
        makeCurrent();
        int rc = cuCtxEnablePeerAccess(peer.context, 0);
        if (rc != CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED) Cu.check("cuCtxEnablePeerAccess", rc);
        return true;
    }

    /** An event without timing (cheap), for ordering one stage's stream after another's. */
    public CUevent newEvent() {
        makeCurrent();
        CUevent e = new CUevent();
        Cu.check("cuEventCreate", cuEventCreate(e, CUevent_flags.CU_EVENT_DISABLE_TIMING));
        return e;
    }

    /** Records {@code event} after everything enqueued on this stream so far. */
    public void record(CUevent event) {
        Cu.check("cuEventRecord", cuEventRecord(event, stream));
    }

    /** Makes this stream wait (on the device, not the host) until {@code event} (of any context) has happened. */
    public void waitFor(CUevent event) {
        Cu.check("cuStreamWaitEvent", cuStreamWaitEvent(stream, event, 0));
    }

    public void destroy(CUevent event) {
        Cu.check("cuEventDestroy", cuEventDestroy(event));
    }

    public void zero(DeviceBuffer b) {
        Cu.check("cuMemsetD8Async", cuMemsetD8Async(b.ptr(), (byte) 0, b.bytes(), stream));
    }

    /** Page-locked host memory (cuMemAllocHost) for the per-step inputs and outputs. */
    public PinnedBuffer pinned(long bytes) {
        Pointer p = new Pointer();
        Cu.check("cuMemAllocHost(" + bytes + ")", cuMemAllocHost(p, bytes));
        return new PinnedBuffer(p, bytes);
    }

    public void synchronize() {
        Cu.check("cuStreamSynchronize", cuStreamSynchronize(stream));
    }

    /** Milliseconds the stream spends on {@code body}, by events around it (after a synchronize). */
    public float time(Runnable body) {
        CUevent start = new CUevent(), stop = new CUevent();
        Cu.check("cuEventCreate", cuEventCreate(start, 0));
        Cu.check("cuEventCreate", cuEventCreate(stop, 0));
        try {
            Cu.check("cuEventRecord", cuEventRecord(start, stream));
            body.run();
            Cu.check("cuEventRecord", cuEventRecord(stop, stream));
            Cu.check("cuEventSynchronize", cuEventSynchronize(stop));
            float[] ms = new float[1];
            Cu.check("cuEventElapsedTime", cuEventElapsedTime(ms, start, stop));
            return ms[0];
        } finally {
            cuEventDestroy(start);
            cuEventDestroy(stop);
        }
    }

    public CudaGraph capture(Runnable body) {
        return CudaGraph.capture(stream, body);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        cuStreamSynchronize(stream);
        Cu.check("cuStreamDestroy", cuStreamDestroy(stream));
        Cu.check("cuDevicePrimaryCtxRelease", cuDevicePrimaryCtxRelease(device));
    }
}
