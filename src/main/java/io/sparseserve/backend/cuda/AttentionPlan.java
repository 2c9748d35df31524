package io.sparseserve.backend.cuda;

/**
 * Launch arithmetic of the attention kernels (native/KERNELS.md, "Attention"), in pure functions: the split length
 * and split count of split-K decode, the scratch it needs, and prefill's KV tile and shared memory.
 *
 * <p>Decode splits are fixed per runner, from the longest sequence it may hold ({@code maxPositions}), because a
 * captured graph freezes its launch arguments: splits past a short sequence's end return at once.
 */
public final class AttentionPlan {
    /** ss::DECODE_MAX_SPLIT_LEN: a split's scores live in static shared memory. */
    public static final int MAX_SPLIT_LEN = 1024;
    /** Positions per split: long enough that the combine is cheap, short enough to spread a long context over the SMs. */
    public static final int SPLIT_LEN = 256;
    /** ss::PREFILL_WARPS: query tokens per prefill block. */
    public static final int PREFILL_WARPS = 4;

    private AttentionPlan() {}

    /** ss::num_splits. */
    public static int numSplits(int positions, int splitLen) {
        return (positions + splitLen - 1) / splitLen;
    }

    /** Splits every decode launch is made with, for sequences of up to {@code maxPositions} positions. */
    public static int maxSplits(int maxPositions) {
        return Math.max(1, numSplits(maxPositions, SPLIT_LEN));
    }

    /** Floats of partOut for {@code tokens} query rows: tokens · heads · maxSplits · headDim. */
    public static long partialOutFloats(int tokens, int heads, int maxSplits, int headDim) {
        return (long) tokens * heads * maxSplits * headDim;
    }

    /** Floats of partMax (and of partSum). */
    public static long partialStatFloats(int tokens, int heads, int maxSplits) {
        return (long) tokens * heads * maxSplits;
    }

    /** ss::prefill_kv_tile. */
    public static int prefillKvTile(int headDim) {
        return headDim <= 128 ? 32 : 16;
    }

    /** ss::prefill_shared_bytes: K tile padded by one float per row, V tile, one q row per warp. */
    public static int prefillSharedBytes(int headDim) {
        int t = prefillKvTile(headDim);
        return (t * (headDim + 1) + t * headDim + PREFILL_WARPS * headDim) * 4;
    }

    /** Prefill blocks along x: one warp per query token, four per block. */
    public static int prefillBlocks(int tokens) {
        return (tokens + PREFILL_WARPS - 1) / PREFILL_WARPS;
    }

    /** 1/sqrt(headDim), the scores' scale (Vaswani et al. 2017, eq. 1). */
    public static float scale(int headDim) {
        return (float) (1.0 / Math.sqrt(headDim));
    }
}
