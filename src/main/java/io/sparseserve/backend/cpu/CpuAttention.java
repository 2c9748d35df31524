package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend.AttentionLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Causal scaled dot-product attention of a batch of tokens over a paged KV cache. Token t belongs to sequence
 * {@code tokenSeq[t]}, sits at {@code positions[t]} and attends to that sequence's positions 0..positions[t],
 * found through its block table. Grouped-query attention: query head h reads KV head h / (heads / kvHeads).
 * Work is split over (token, head) pairs.
 */
public final class CpuAttention {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;

    private final CpuPool pool;
    private final float[][] scores;

    public CpuAttention(CpuPool pool, int maxContext) {
        this.pool = pool;
        this.scores = new float[pool.threads()][maxContext];
    }

    /**
     * q: [tokens, heads * headDim]; kCache, vCache: [slots, kvHeads * headDim] where slot = block * blockSize +
     * offset; out: [tokens, heads * headDim].
     */
    public void attend(AttentionLayout l, float[] q, float[] kCache, float[] vCache, float[] out) {
        int pairs = l.tokens() * l.heads();
        float scale = (float) (1.0 / Math.sqrt(l.headDim()));
        pool.parallelFor(pairs, (p0, p1, th) -> {
            for (int pair = p0; pair < p1; pair++) {
                attendOne(l, pair / l.heads(), pair % l.heads(), scale, q, kCache, vCache, out, scores[th]);
            }
        });
    }

    private static void attendOne(AttentionLayout l, int t, int h, float scale, float[] q, float[] kCache, float[] vCache,
                                  float[] out, float[] sc) {
        int d = l.headDim();
        int qDim = l.heads() * d, kvDim = l.kvHeads() * d;
        int kvh = h / (l.heads() / l.kvHeads());
        int qo = t * qDim + h * d;
        int[] table = l.blockTables()[l.tokenSeq()[t]];
        int bs = l.blockSize();
        int n = l.positions()[t] + 1;
        float max = Float.NEGATIVE_INFINITY;
        for (int j = 0; j < n; j++) {
            int ko = (table[j / bs] * bs + j % bs) * kvDim + kvh * d;
            float s = CpuMatmul.dot(q, qo, kCache, ko, d) * scale;
            sc[j] = s;
            if (s > max) max = s;
        }
        float sum = 0f;
        for (int j = 0; j < n; j++) {
            float e = (float) Math.exp(sc[j] - max);
            sc[j] = e;
            sum += e;
        }
        float inv = 1f / sum;
        int oo = t * qDim + h * d;
        java.util.Arrays.fill(out, oo, oo + d, 0f);
        int bound = F.loopBound(d);
        for (int j = 0; j < n; j++) {
            float p = sc[j] * inv;
            int vo = (table[j / bs] * bs + j % bs) * kvDim + kvh * d;
            int i = 0;
            for (; i < bound; i += F.length()) {
                FloatVector.fromArray(F, vCache, vo + i).fma(FloatVector.broadcast(F, p), FloatVector.fromArray(F, out, oo + i))
                        .intoArray(out, oo + i);
            }
            for (; i < d; i++) out[oo + i] += p * vCache[vo + i];
        }
    }
}
