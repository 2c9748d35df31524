package io.sparseserve.backend.cuda;

import java.nio.file.Path;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Opens cuBLAS on the context's stream: JCublas where its native library and libcublas.so.12 load (CUDA 12), else
 * FFM downcalls into libcublas.so.13 found by {@link CudaLibraries} (CUDA 13, where JCuda 12.6 has no build). Logs
 * which serves and, when neither does, says where it looked.
 */
public final class Gemms {
    private static final Logger log = LoggerFactory.getLogger(Gemms.class);
    /** cuBLAS's recommended workspace for Hopper (cuBLAS docs, cublasSetWorkspace: 32 MiB on sm_90). */
    public static final long WORKSPACE_BYTES = 32L << 20;

    private Gemms() {}

    public static Gemm open(CudaContext ctx, CudaLibraries libs) {
        DeviceBuffer workspace = ctx.memory().allocate(MemoryKind.WORKSPACE, WORKSPACE_BYTES, "cuBLAS workspace");
        String jcublasFailure;
        try {
            Gemm g = new JcublasGemm(ctx.stream(), workspace);
            log.info("cuBLAS: {}", g.name());
            return g;
        } catch (LinkageError e) {
            jcublasFailure = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
        }
        Optional<Path> so13 = libs.find("libcublas.so.13");
        if (so13.isEmpty()) {
            throw new CudaUnavailableException("--device cuda: no cuBLAS: JCublas does not load (" + jcublasFailure
                    + ") and libcublas.so.13 is not found (" + libs.describe() + "); set SPARSE_SERVE_CUDA_LIBS");
        }
        // libcublas.so.13 needs libcublasLt.so.13 beside it: its RUNPATH ($ORIGIN) finds it in the same folder.
        Gemm g = new FfmCublas(so13.get(), ctx.stream(), workspace);
        log.info("cuBLAS: {} (JCublas did not load: {})", g.name(), jcublasFailure);
        return g;
    }
}
