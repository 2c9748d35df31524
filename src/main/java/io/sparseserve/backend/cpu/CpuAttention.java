package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend.AttentionLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
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
     * q: [tokens, heads * headDim]; kCache, vCache: blocks of [kvHeads][blockSize][headDim] (one head's keys of a block
     * are contiguous, so a head reads its keys and values as long sequential runs); out: [tokens, heads * headDim].
     */
    public void attend(AttentionLayout l, float[] q, float[] kCache, float[] vCache, float[] out) {
        Task t = task;
        t.l = l;
        t.q = q;
        t.kCache = kCache;
        t.vCache = vCache;
        t.out = out;
        t.scale = (float) (1.0 / Math.sqrt(l.headDim()));
        pool.parallelFor(l.tokens() * l.heads(), t);
    }

    private final Task task = new Task();

    /** The (token, head) pairs [p0, p1); refilled per call so that a step allocates nothing. */
    private final class Task implements CpuPool.RangeTask {
        AttentionLayout l;
        float[] q, kCache, vCache, out;
        float scale;

        @Override
        public void run(int p0, int p1, int thread) {
            for (int pair = p0; pair < p1; pair++) {
                attendOne(l, pair / l.heads(), pair % l.heads(), scale, q, kCache, vCache, out, scores[thread]);
            }
        }
    }

    private static void attendOne(AttentionLayout l, int t, int h, float scale, float[] q, float[] kCache, float[] vCache,
                                  float[] out, float[] sc) {
        int d = l.headDim(), kvHeads = l.kvHeads();
        int qDim = l.heads() * d;
        int kvh = h / (l.heads() / kvHeads);
        int qo = t * qDim + h * d;
        int[] table = l.blockTables()[l.tokenSeq()[t]];
        int bs = l.blockSize();
        int n = l.positions()[t] + 1;
        float max = Float.NEGATIVE_INFINITY;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            int base = AttentionLayout.kvIndex(table[bi], kvh, 0, kvHeads, bs, d);
            for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                float s = CpuMatmul.dot(q, qo, kCache, base + o * d, d) * scale;
                sc[b0 + o] = s;
                if (s > max) max = s;
            }
        }
        // Softmax weights a vector at a time (the vector exp is within an ulp of Math.exp and far cheaper than it).
        FloatVector vmax = FloatVector.broadcast(F, max), vsum = FloatVector.zero(F);
        int nb = F.loopBound(n), j = 0;
        for (; j < nb; j += F.length()) {
            FloatVector e = FloatVector.fromArray(F, sc, j).sub(vmax).lanewise(VectorOperators.EXP);
            e.intoArray(sc, j);
            vsum = vsum.add(e);
        }
        float sum = vsum.reduceLanes(VectorOperators.ADD);
        for (; j < n; j++) {
            float e = (float) Math.exp(sc[j] - max);
            sc[j] = e;
            sum += e;
        }
        float inv = 1f / sum;
        int oo = t * qDim + h * d;
        // out = sum_j p_j v_j, one vector of output dimensions at a time, its sum kept in a register over all j.
        int bound = F.loopBound(d), i = 0;
        for (; i < bound; i += F.length()) {
            FloatVector acc = FloatVector.zero(F);
            for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
                int base = AttentionLayout.kvIndex(table[bi], kvh, 0, kvHeads, bs, d) + i;
                for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                    acc = FloatVector.fromArray(F, vCache, base + o * d).fma(FloatVector.broadcast(F, sc[b0 + o]), acc);
                }
            }
            acc.mul(inv).intoArray(out, oo + i);
        }
        for (; i < d; i++) {
            float acc = 0f;
            for (int p = 0; p < n; p++) {
                acc += sc[p] * vCache[AttentionLayout.kvIndex(table[p / bs], kvh, p % bs, kvHeads, bs, d) + i];
            }
            out[oo + i] = acc * inv;
        }
    }
}
