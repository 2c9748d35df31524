package io.sparseserve.backend.cpu;

import static io.sparseserve.tensor.TestMatrices.randomVector;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.backend.Backend.AttentionLayout;
import org.junit.jupiter.api.Test;

/** Paged, grouped-query causal attention against a naive double-precision reference over contiguous keys. */
class CpuAttentionTest {

    @Test
    void matchesNaiveAttentionThroughScatteredBlocks() {
        int heads = 4, kvHeads = 2, d = 20, bs = 4, blocks = 16;
        int kvDim = kvHeads * d, qDim = heads * d;
        // Two sequences whose blocks are scattered over the cache.
        int[][] tables = {{7, 2, 11}, {0, 15, 3, 9}};
        float[] kCache = randomVector(blocks * bs * kvDim, 1), vCache = randomVector(blocks * bs * kvDim, 2);
        // The step: the last 2 tokens of seq 0 and the last 5 of seq 1.
        int[] tokenSeq = {0, 0, 1, 1, 1, 1, 1};
        int[] positions = {7, 8, 9, 10, 11, 12, 13};
        int tokens = tokenSeq.length;
        float[] q = randomVector(tokens * qDim, 3), out = new float[tokens * qDim];
        new CpuAttention(new CpuPool(2), 64).attend(
                new AttentionLayout(tokens, positions, tokenSeq, tables, bs, heads, kvHeads, d), q, kCache, vCache, out);
        for (int t = 0; t < tokens; t++) {
            int[] table = tables[tokenSeq[t]];
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                int n = positions[t] + 1;
                double[] s = new double[n];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    int slot = table[j / bs] * bs + j % bs;
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += (double) q[t * qDim + h * d + i] * kCache[slot * kvDim + kvh * d + i];
                    s[j] = dot / Math.sqrt(d);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - max);
                for (int i = 0; i < d; i++) {
                    double ref = 0;
                    for (int j = 0; j < n; j++) ref += s[j] / sum * vCache[(table[j / bs] * bs + j % bs) * kvDim + kvh * d + i];
                    assertEquals(ref, out[t * qDim + h * d + i], 1e-5, "t=" + t + " h=" + h + " i=" + i);
                }
            }
        }
    }
}
