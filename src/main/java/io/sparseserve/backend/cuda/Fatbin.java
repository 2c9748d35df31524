package io.sparseserve.backend.cuda;

import java.io.IOException;
import java.io.InputStream;

/**
 * The kernels of {@code native/*.cu}, compiled by nvcc during the Maven build into one fatbin (SASS for sm_80 and
 * sm_90 plus PTX) that the jar carries at {@link #RESOURCE}. A jar built where nvcc was absent has none.
 */
public final class Fatbin {
    public static final String RESOURCE = "/cuda/sparse-serve.fatbin";

    private Fatbin() {}

    /** True when this jar carries the kernels. */
    public static boolean present() {
        return Fatbin.class.getResource(RESOURCE) != null;
    }

    /** The fatbin's bytes, or a one-line CudaUnavailableException saying the jar was built without kernels. */
    public static byte[] load() {
        try (InputStream in = Fatbin.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new CudaUnavailableException("--device cuda: this build has no GPU kernels (" + RESOURCE.substring(1)
                        + " is missing: nvcc was not on the PATH when it was built); rebuild with CUDA's nvcc installed");
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new CudaUnavailableException("--device cuda: cannot read " + RESOURCE.substring(1) + ": " + e.getMessage(), e);
        }
    }
}
