package io.sparseserve.backend.cuda;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DType;

/**
 * The names of the kernels in the fatbin (native/KERNELS.md), from the dtype, KV dtype and token tile they are
 * specialised for, and the token-tile choice of the GEMV kernels. One place, tested, so that a name typed wrong is a
 * failing test here rather than a cuModuleGetFunction error on the GPU machine.
 */
public final class KernelNames {
    /** Largest token tile of the GEMV kernels: more rows go to cuBLAS or are cut into slices of this many. */
    public static final int MAX_GEMV_TOKENS = 16;
    /** Rows per block of the GEMV kernels (one warp each, block 256): ss::GEMV_WARPS. */
    public static final int GEMV_ROWS_PER_BLOCK = 8;

    private KernelNames() {}

    public static String dtype(DType d) {
        return switch (d) {
            case F32 -> "f32";
            case F16 -> "f16";
            case BF16 -> "bf16";
            default -> throw new IllegalArgumentException("no kernels for weights of dtype " + d);
        };
    }

    public static String kv(KvDtype k) {
        return switch (k) {
            case F32 -> "kvf32";
            case BF16 -> "kvbf16";
        };
    }

    /** ss::gemv_token_tile: the smallest of 1, 2, 4, 8, 16 that holds {@code tokens} (1..16). */
    public static int tokenTile(int tokens) {
        if (tokens < 1 || tokens > MAX_GEMV_TOKENS) throw new IllegalArgumentException("GEMV of " + tokens + " token rows");
        return tokens <= 1 ? 1 : tokens <= 2 ? 2 : tokens <= 4 ? 4 : tokens <= 8 ? 8 : 16;
    }

    public static String gemv(DType d, int tokens) {
        return "gemv_" + dtype(d) + "_t" + tokenTile(tokens);
    }

    public static String spmvBitmask(DType d, int tokens) {
        return "spmv_bitmask_" + dtype(d) + "_t" + tokenTile(tokens);
    }

    public static String spmvNm24(DType d, int tokens) {
        return "spmv_nm24_" + dtype(d) + "_t" + tokenTile(tokens);
    }

    public static String expandBitmask(DType d) {
        return "expand_bitmask_" + dtype(d);
    }

    public static String expandNm24(DType d) {
        return "expand_nm24_" + dtype(d);
    }

    public static String embed(DType d) {
        return "embed_" + dtype(d);
    }

    /** f32 -> the weights' 16-bit dtype, for cuBLAS inputs (F32 weights take f32 inputs as they are). */
    public static String castFromF32(DType d) {
        return switch (d) {
            case F16 -> "cast_f32_to_f16";
            case BF16 -> "cast_f32_to_bf16";
            default -> throw new IllegalArgumentException("no cast to " + d);
        };
    }

    public static String kvStore(KvDtype k) {
        return "kv_store_" + kv(k);
    }

    public static String attnDecodePartial(KvDtype k) {
        return "attn_decode_partial_" + kv(k);
    }

    public static String attnPrefill(KvDtype k) {
        return "attn_prefill_" + kv(k);
    }

    /** Blocks of a GEMV-style launch over {@code rows} output rows. */
    public static int gemvBlocks(int rows) {
        return (rows + GEMV_ROWS_PER_BLOCK - 1) / GEMV_ROWS_PER_BLOCK;
    }
}
