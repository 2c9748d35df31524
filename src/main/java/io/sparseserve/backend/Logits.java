package io.sparseserve.backend;

import java.util.Objects;

/** The greedy choice over a row of logits, one definition for the sampler, the runners and the GPU comparison. */
public final class Logits {
    private Logits() {}

    /**
     * Index of the largest of {@code x[offset, offset + n)}, the lowest on ties; NaN is never chosen (the device's
     * argmax kernel follows the same rule).
     */
    public static int argmax(float[] x, int offset, int n) {
        Objects.checkFromIndexSize(offset, n, x.length);
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float v = x[offset + i];
            if (v > bestValue) {
                bestValue = v;
                best = i;
            }
        }
        return best;
    }
}
