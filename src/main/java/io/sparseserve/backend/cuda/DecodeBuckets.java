package io.sparseserve.backend.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * The batch sizes decode graphs are captured for: powers of two up to the runner's sequence limit, and the limit
 * itself. A decode step of n sequences replays the graph of the smallest bucket ≥ n, its extra rows padded (as
 * vLLM's CUDA-graph batch sizes do); a graph per bucket keeps their number logarithmic in the limit.
 */
public final class DecodeBuckets {
    private final int[] sizes;

    public DecodeBuckets(int maxSequences) {
        if (maxSequences < 1) throw new IllegalArgumentException("max sequences " + maxSequences);
        List<Integer> s = new ArrayList<>();
        for (int b = 1; b < maxSequences; b *= 2) s.add(b);
        s.add(maxSequences);
        sizes = s.stream().mapToInt(Integer::intValue).toArray();
    }

    public int[] sizes() {
        return sizes.clone();
    }

    /** The smallest bucket holding {@code n} sequences. */
    public int bucketFor(int n) {
        for (int b : sizes) if (b >= n) return b;
        throw new IllegalArgumentException(n + " sequences exceed the largest decode bucket " + sizes[sizes.length - 1]);
    }
}
