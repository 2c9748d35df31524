package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Step;
import java.util.Arrays;

/**
 * Which CUDA graph a decode step replays. A graph is captured once per batch-size bucket, with fixed kernel shapes and
 * fixed device addresses (llama.cpp and vLLM do the same); a step of B decode rows replays the smallest bucket that
 * holds B, the rows past B padded ({@link StepPacking}). The buckets are vLLM's capture sizes: 1, 2, 4, then
 * every multiple of 8 up to the largest step (vLLM's {@code cudagraph_capture_sizes}, default up to 512): at most 7
 * padded rows per step past 8, and few graphs to capture.
 *
 * <p>Only a pure decode step replays a graph: every sequence brings exactly one token. A step with a prompt chunk
 * runs its kernels directly (its shapes vary with the chunk; prefill is compute-bound, launch overhead matters
 * little), as does a decode step larger than the largest bucket.
 */
public final class GraphBuckets {
    /** vLLM's largest capture size by default. */
    public static final int MAX_CAPTURED = 512;

    private final int[] sizes;

    private GraphBuckets(int[] sizes) {
        this.sizes = sizes;
    }

    /** The buckets for steps of up to {@code maxSequences} decode rows (at most {@link #MAX_CAPTURED}). */
    public static GraphBuckets upTo(int maxSequences) {
        if (maxSequences < 1) throw new IllegalArgumentException("maxSequences must be >= 1, got " + maxSequences);
        int max = Math.min(maxSequences, MAX_CAPTURED);
        int[] sizes = new int[3 + max / 8 + 1];
        int n = 0;
        for (int b : new int[] {1, 2, 4}) if (b < max) sizes[n++] = b;
        for (int b = 8; b < max; b += 8) sizes[n++] = b;
        sizes[n++] = max; // the largest step always has its own graph, multiple of 8 or not
        return new GraphBuckets(Arrays.copyOf(sizes, n));
    }

    /** The bucket sizes, ascending. */
    public int[] sizes() {
        return sizes.clone();
    }

    public int largest() {
        return sizes[sizes.length - 1];
    }

    /** The smallest bucket holding {@code rows} decode rows, or -1 when none does (the step runs without a graph). */
    public int bucketFor(int rows) {
        if (rows < 1) throw new IllegalArgumentException("a decode step has at least one row, got " + rows);
        int i = Arrays.binarySearch(sizes, rows);
        if (i >= 0) return sizes[i];
        int insert = -i - 1;
        return insert == sizes.length ? -1 : sizes[insert];
    }

    /** True when every sequence of the step brings exactly one token (a pure decode step). */
    public static boolean isDecode(Step step) {
        for (int s = 0; s < step.sequences(); s++) if (step.seqCount(s) != 1) return false;
        return step.sequences() > 0;
    }

    /** The graph bucket a step replays, or -1 when it runs without a graph (a prompt chunk, or too many rows). */
    public int bucketFor(Step step) {
        return isDecode(step) ? bucketFor(step.sequences()) : -1;
    }
}
