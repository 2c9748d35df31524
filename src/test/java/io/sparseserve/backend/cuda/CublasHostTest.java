package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.tensor.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** cuBLAS's host side without a GPU: GEMM argument mapping, the FFM descriptors, the library search. */
class CublasHostTest {

    /**
     * Runs cublasGemmEx's column-major definition (C = op(A)·op(B), element (i, j) at i + j·ld) over the arguments
     * GemmArgs gives and checks it computes the row-major y = x·wᵀ of nn.Linear, with padded ldx and ldy.
     */
    @Test
    void gemmArgumentsComputeTheLinearLayer() {
        Random rnd = new Random(5);
        int rows = 7, cols = 13, tokens = 5, ldx = 16, ldy = 9;
        float[] w = new float[rows * cols], x = new float[tokens * ldx], y = new float[tokens * ldy];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        GemmArgs a = GemmArgs.linear(DType.BF16, rows, cols, tokens, ldx, ldy);
        assertEquals(GemmArgs.CUDA_R_16BF, a.atype());
        assertEquals(GemmArgs.CUDA_R_32F, a.ctype());
        for (int i = 0; i < a.m(); i++) {
            for (int j = 0; j < a.n(); j++) {
                double s = 0;
                for (int l = 0; l < a.k(); l++) {
                    float av = a.transa() == GemmArgs.CUBLAS_OP_T ? w[l + i * a.lda()] : w[i + l * a.lda()];
                    float bv = a.transb() == GemmArgs.CUBLAS_OP_T ? x[j + l * a.ldb()] : x[l + j * a.ldb()];
                    s += (double) av * bv;
                }
                y[i + j * a.ldc()] = (float) s;
            }
        }
        for (int t = 0; t < tokens; t++) {
            for (int r = 0; r < rows; r++) {
                double ref = 0;
                for (int k = 0; k < cols; k++) ref += (double) x[t * ldx + k] * w[r * cols + k];
                assertEquals(ref, y[t * ldy + r], 1e-5, "y[" + t + "][" + r + "]");
            }
        }
        assertThrows(IllegalArgumentException.class, () -> GemmArgs.linear(DType.F32, 4, 8, 1, 7, 4));
        assertThrows(IllegalArgumentException.class, () -> GemmArgs.linear(DType.I64, 4, 8, 1, 8, 4));
    }

    /**
     * The descriptors against cuBLAS's C prototypes (cublas_api.h, copied as text): every parameter's C type maps to the
     * layout FFM must pass on x86-64 (enums and int: 32-bit; size_t: 64-bit; handles and pointers: addresses).
     */
    @Test
    void ffmDescriptorsMatchTheCPrototypes() {
        Map<String, String> prototypes = Map.of(
                "cublasCreate_v2", "cublasStatus_t (cublasHandle_t* handle)",
                "cublasDestroy_v2", "cublasStatus_t (cublasHandle_t handle)",
                "cublasSetStream_v2", "cublasStatus_t (cublasHandle_t handle, cudaStream_t streamId)",
                "cublasSetWorkspace_v2", "cublasStatus_t (cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes)",
                "cublasGemmEx", "cublasStatus_t (cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,"
                        + " int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype, int lda,"
                        + " const void* B, cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype,"
                        + " int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo)");
        assertEquals(prototypes.keySet(), FfmCublas.DESCRIPTORS.keySet());
        for (var e : prototypes.entrySet()) {
            assertEquals(fromPrototype(e.getValue()), FfmCublas.DESCRIPTORS.get(e.getKey()), e.getKey());
        }
    }

    private static FunctionDescriptor fromPrototype(String proto) {
        String ret = proto.substring(0, proto.indexOf('(')).trim();
        String params = proto.substring(proto.indexOf('(') + 1, proto.lastIndexOf(')'));
        List<MemoryLayout> args = new ArrayList<>();
        for (String p : params.split(",")) {
            String decl = p.trim();
            args.add(layoutOf(decl.substring(0, decl.lastIndexOf(' ')).trim()));
        }
        return FunctionDescriptor.of(layoutOf(ret), args.toArray(MemoryLayout[]::new));
    }

    private static MemoryLayout layoutOf(String cType) {
        if (cType.endsWith("*") || cType.equals("cublasHandle_t") || cType.equals("cudaStream_t")) return ValueLayout.ADDRESS;
        return switch (cType) {
            case "int", "cublasStatus_t", "cublasOperation_t", "cudaDataType", "cublasComputeType_t", "cublasGemmAlgo_t" -> ValueLayout.JAVA_INT;
            case "size_t" -> ValueLayout.JAVA_LONG;
            default -> throw new IllegalArgumentException("unmapped C type " + cType);
        };
    }

    @Test
    void librarySearchFindsPythonWheelsAndExplicitFolders(@TempDir Path tmp) throws Exception {
        Path venv = tmp.resolve("venv");
        Path wheelLib = Files.createDirectories(venv.resolve("lib/python3.12/site-packages/nvidia/cu13/lib"));
        Files.writeString(wheelLib.resolve("libcublas.so.13"), "not really a library");
        Path explicit = Files.createDirectories(tmp.resolve("explicit"));
        Path ld = Files.createDirectories(tmp.resolve("ld"));
        List<Path> dirs = CudaLibraries.searchPath(Map.of("VIRTUAL_ENV", venv.toString(), "SPARSE_SERVE_CUDA_LIBS",
                explicit + ":" + tmp.resolve("missing"), "LD_LIBRARY_PATH", ld.toString()), null, tmp.resolve("home"));
        assertEquals(explicit, dirs.get(0), "explicit folders first: " + dirs);
        assertEquals(ld, dirs.get(1), "then LD_LIBRARY_PATH: " + dirs);
        assertTrue(dirs.contains(wheelLib), "the venv's nvidia/*/lib: " + dirs);
        assertTrue(dirs.stream().noneMatch(d -> d.endsWith("missing")), "only existing folders: " + dirs);
        CudaLibraries libs = new CudaLibraries(dirs);
        assertEquals(Optional.of(wheelLib.resolve("libcublas.so.13")), libs.find("libcublas.so.13"));
        // A copy in an earlier folder wins.
        Files.writeString(explicit.resolve("libcublas.so.13"), "");
        assertEquals(Optional.of(explicit.resolve("libcublas.so.13")), libs.find("libcublas.so.13"));
        assertTrue(libs.describe().startsWith("searched " + explicit), libs.describe());
    }

    /** Where this machine has CUDA 13's cuBLAS, every symbol we call is exported by it (not called: no GPU needed). */
    @Test
    void installedCublasExportsEverySymbol() {
        CudaLibraries libs = CudaLibraries.fromEnvironment();
        Optional<Path> so = libs.find("libcublas.so.13");
        if (so.isEmpty()) {
            System.out.println("skipped: no libcublas.so.13 here (" + libs.describe() + ")");
            return;
        }
        try {
            SymbolLookup lookup = SymbolLookup.libraryLookup(so.get(), Arena.global());
            assertEquals(FfmCublas.DESCRIPTORS.size(), FfmCublas.bind(lookup).size());
        } catch (IllegalArgumentException e) {
            System.out.println("skipped: " + so.get() + " does not load here: " + e.getMessage());
        }
    }
}
