package io.sparseserve.backend.cuda;

import java.nio.file.Path;
import java.util.Optional;
import jcuda.jcusparse.JCusparse;
import jcuda.jcusparse.cusparseHandle;
import jcuda.jcusparse.cusparseStatus;
import jcuda.runtime.cudaStream_t;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * cuSPARSE through JCusparse, whose native library names {@code libcusparse.so.12} (CUDA 12 and 13 both ship that
 * major version). Where that library is not on the loader's path (PyTorch's wheels), it is loaded first by absolute
 * path from {@link CudaLibraries}, so that the JNI library finds it by its soname.
 */
public final class Cusparse {
    private static final Logger log = LoggerFactory.getLogger(Cusparse.class);

    private Cusparse() {}

    public static void check(String call, int status) {
        if (status != cusparseStatus.CUSPARSE_STATUS_SUCCESS) throw new CudaException(call, status, cusparseStatus.stringFor(status), false);
    }

    /** A handle on the context's stream, or CudaUnavailableException naming what did not load. */
    public static cusparseHandle open(CudaContext ctx, CudaLibraries libs) {
        Optional<Path> so = libs.find("libcusparse.so.12");
        try {
            so.ifPresent(p -> System.load(p.toString()));
            JCusparse.initialize();
            cusparseHandle h = new cusparseHandle();
            check("cusparseCreate", JCusparse.cusparseCreate(h));
            check("cusparseSetStream", JCusparse.cusparseSetStream(h, new cudaStream_t(ctx.stream())));
            log.info("cuSPARSE: JCusparse ({})", so.map(Path::toString).orElse("libcusparse.so.12 from the loader's path"));
            return h;
        } catch (LinkageError e) {
            throw new CudaUnavailableException("--sparse-kernel cusparse: cuSPARSE does not load ("
                    + (e.getMessage() == null ? e : e.getMessage().lines().findFirst().orElse("")) + "; " + libs.describe() + ")", e);
        }
    }
}
