package io.sparseserve.backend.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.sparseserve.tensor.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * cuBLAS through FFM downcalls ({@code java.lang.foreign}) into {@code libcublas.so.13}, where JCublas (built against
 * libcublas.so.12) cannot load: CUDA 13 machines. Handles and device addresses are plain pointers; the stream handle
 * comes from {@link CudaStream#handle()}.
 */
public final class FfmCublas implements Gemm {
    /** The C prototypes (cublas_api.h, CUDA 12/13) as FFM descriptors: enums are int, handles and pointers ADDRESS. */
    static final Map<String, FunctionDescriptor> DESCRIPTORS = descriptors();

    private final Path library;
    private final Arena arena = Arena.ofShared();
    private final MethodHandle gemmEx;
    private final MethodHandle destroy;
    private final MemorySegment handle;
    private final MemorySegment one;
    private final MemorySegment zero;
    private boolean closed;

    private static Map<String, FunctionDescriptor> descriptors() {
        Map<String, FunctionDescriptor> d = new LinkedHashMap<>();
        // cublasStatus_t cublasCreate_v2(cublasHandle_t* handle)
        d.put("cublasCreate_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        // cublasStatus_t cublasDestroy_v2(cublasHandle_t handle)
        d.put("cublasDestroy_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS));
        // cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId)
        d.put("cublasSetStream_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
        // cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes)
        d.put("cublasSetWorkspace_v2", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
        // cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
        //     int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,
        //     const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
        //     cublasComputeType_t computeType, cublasGemmAlgo_t algo)
        d.put("cublasGemmEx", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT));
        return Map.copyOf(d);
    }

    /** Binds the downcalls of {@link #DESCRIPTORS} in {@code lookup}; a missing symbol is an error naming it. */
    static Map<String, MethodHandle> bind(SymbolLookup lookup) {
        Linker linker = Linker.nativeLinker();
        Map<String, MethodHandle> out = new LinkedHashMap<>();
        for (var e : DESCRIPTORS.entrySet()) {
            MemorySegment symbol = lookup.find(e.getKey())
                    .orElseThrow(() -> new CudaUnavailableException("cuBLAS library lacks " + e.getKey()));
            out.put(e.getKey(), linker.downcallHandle(symbol, e.getValue()));
        }
        return out;
    }

    /** Opens cuBLAS from {@code library} on {@code stream} with {@code workspace} (device memory it may use). */
    public FfmCublas(Path library, CudaStream stream, DeviceBuffer workspace) {
        this.library = library;
        // libcublas.so.13 names libcublasLt.so.13 as NEEDED; loaded first from the same folder, the loader finds it
        // by its soname even where that folder is not on LD_LIBRARY_PATH.
        Path lt = library.resolveSibling("libcublasLt.so.13");
        if (java.nio.file.Files.isRegularFile(lt)) SymbolLookup.libraryLookup(lt, Arena.global());
        Map<String, MethodHandle> h = bind(SymbolLookup.libraryLookup(library, Arena.global()));
        this.gemmEx = h.get("cublasGemmEx");
        this.destroy = h.get("cublasDestroy_v2");
        try {
            MemorySegment out = arena.allocate(ADDRESS);
            CublasStatus.check("cublasCreate_v2", (int) h.get("cublasCreate_v2").invokeExact(out));
            this.handle = out.get(ADDRESS, 0);
            CublasStatus.check("cublasSetStream_v2", (int) h.get("cublasSetStream_v2").invokeExact(handle, MemorySegment.ofAddress(stream.handle())));
            CublasStatus.check("cublasSetWorkspace_v2", (int) h.get("cublasSetWorkspace_v2")
                    .invokeExact(handle, MemorySegment.ofAddress(workspace.address()), workspace.bytes()));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLAS downcall failed", t);
        }
        this.one = arena.allocateFrom(JAVA_FLOAT, 1f);
        this.zero = arena.allocateFrom(JAVA_FLOAT, 0f);
    }

    @Override
    public String name() {
        return "ffm (" + library + ")";
    }

    @Override
    public void linear(DType dtype, long w, long x, long y, int rows, int cols, int tokens, int ldx, int ldy) {
        GemmArgs a = GemmArgs.linear(dtype, rows, cols, tokens, ldx, ldy);
        int status;
        try {
            status = (int) gemmEx.invokeExact(handle, a.transa(), a.transb(), a.m(), a.n(), a.k(), one,
                    MemorySegment.ofAddress(w), a.atype(), a.lda(), MemorySegment.ofAddress(x), a.btype(), a.ldb(), zero,
                    MemorySegment.ofAddress(y), a.ctype(), a.ldc(), a.computeType(), a.algo());
        } catch (Throwable t) {
            throw new IllegalStateException("cublasGemmEx downcall failed", t);
        }
        CublasStatus.check("cublasGemmEx(" + dtype + " " + tokens + "x" + cols + " by " + rows + ")", status);
    }

    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            CublasStatus.check("cublasDestroy_v2", (int) destroy.invokeExact(handle));
        } catch (CudaException e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLAS downcall failed", t);
        } finally {
            arena.close();
        }
    }
}
