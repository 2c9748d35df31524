package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend.AttentionLayout;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DTypeConvert;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Causal scaled dot-product attention of a batch of tokens over a paged KV cache held in native memory
 * ({@link KvCache}). Token t belongs to sequence {@code tokenSeq[t]}, sits at {@code positions[t]} and attends to
 * that sequence's positions 0..positions[t], found through its block table. Grouped-query attention: query head h
 * reads KV head h / (heads / kvHeads). Work is split over (token, head) pairs, each computed alone: a token's result
 * does not depend on its batch, bit for bit.
 *
 * <p>Keys and values are read where they lie, with the Vector API: float32 as they are; bfloat16 widened in
 * registers, two to a 32-bit lane as {@link Bf16Gemv} does (the even element is the lane shifted left by 16, the odd
 * one the lane with its low half cleared), the query split once per head into its even and odd elements to match.
 */
public final class CpuAttention {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();

    private final CpuPool pool;
    private final float[][] scores;
    // Per thread, grown to the head width on first use: the query's even and odd elements, and the values' sums.
    private final float[][] evens, odds, sumEven, sumOdd;

    public CpuAttention(CpuPool pool, int maxContext) {
        this.pool = pool;
        int threads = pool.threads();
        this.scores = new float[threads][maxContext];
        this.evens = new float[threads][0];
        this.odds = new float[threads][0];
        this.sumEven = new float[threads][0];
        this.sumOdd = new float[threads][0];
    }

    /**
     * q: [tokens, heads * headDim]; kCache, vCache: one layer's blocks of [kvHeads][blockSize][headDim] elements of
     * {@code dtype} (one head's keys of a block are contiguous, so a head reads its keys and values as long sequential
     * runs); out: [tokens, heads * headDim].
     */
    public void attend(AttentionLayout l, float[] q, MemorySegment kCache, MemorySegment vCache, KvDtype dtype, float[] out) {
        Task t = task;
        t.l = l;
        t.q = q;
        t.kCache = kCache;
        t.vCache = vCache;
        t.bf16 = dtype == KvDtype.BF16;
        t.out = out;
        t.scale = (float) (1.0 / Math.sqrt(l.headDim()));
        pool.parallelFor(l.tokens() * l.heads(), t);
    }

    private final Task task = new Task();

    /** The (token, head) pairs [p0, p1); refilled per call so that a step allocates nothing. */
    private final class Task implements CpuPool.RangeTask {
        AttentionLayout l;
        float[] q, out;
        MemorySegment kCache, vCache;
        boolean bf16;
        float scale;

        @Override
        public void run(int p0, int p1, int thread) {
            int d = l.headDim();
            if (bf16 && evens[thread].length < d) {
                evens[thread] = new float[d];
                odds[thread] = new float[d];
                sumEven[thread] = new float[d];
                sumOdd[thread] = new float[d];
            }
            for (int pair = p0; pair < p1; pair++) {
                int t = pair / l.heads(), h = pair % l.heads();
                if (bf16) {
                    attendBf16(l, t, h, scale, q, kCache, vCache, out, scores[thread], evens[thread], odds[thread],
                            sumEven[thread], sumOdd[thread]);
                } else {
                    attendF32(l, t, h, scale, q, kCache, vCache, out, scores[thread]);
                }
            }
        }
    }

    private static void attendF32(AttentionLayout l, int t, int h, float scale, float[] q, MemorySegment kCache,
                                  MemorySegment vCache, float[] out, float[] sc) {
        int d = l.headDim(), kvHeads = l.kvHeads();
        int qo = t * l.heads() * d + h * d;
        int kvh = h / (l.heads() / kvHeads);
        int[] table = l.blockTables()[l.tokenSeq()[t]];
        int bs = l.blockSize();
        int n = l.positions()[t] + 1;
        float max = Float.NEGATIVE_INFINITY;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d);
            for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                float s = dotF32(q, qo, kCache, base + (long) o * d, d) * scale;
                sc[b0 + o] = s;
                if (s > max) max = s;
            }
        }
        float inv = 1f / softmax(sc, n, max);
        // out = sum_j p_j v_j, one vector of output dimensions at a time, its sum kept in a register over all j.
        int bound = F.loopBound(d), i = 0;
        for (; i < bound; i += F.length()) {
            FloatVector acc = FloatVector.zero(F);
            for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
                long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d) + i;
                for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                    FloatVector v = FloatVector.fromMemorySegment(F, vCache, (base + (long) o * d) * Float.BYTES, NATIVE);
                    acc = v.fma(FloatVector.broadcast(F, sc[b0 + o]), acc);
                }
            }
            acc.mul(inv).intoArray(out, qo + i);
        }
        for (; i < d; i++) {
            float acc = 0f;
            for (int p = 0; p < n; p++) {
                acc += sc[p] * vCache.get(FLOAT, (KvCache.offset(table[p / bs], kvh, p % bs, kvHeads, bs, d) + i) * Float.BYTES);
            }
            out[qo + i] = acc * inv;
        }
    }

    /** q[qo, qo + d) . keys at element {@code at}: the arithmetic of {@link CpuMatmul#dot}, so f32 results are unchanged. */
    private static float dotF32(float[] q, int qo, MemorySegment keys, long at, int d) {
        FloatVector acc = FloatVector.zero(F);
        int bound = F.loopBound(d), k = 0;
        for (; k < bound; k += F.length()) {
            FloatVector kv = FloatVector.fromMemorySegment(F, keys, (at + k) * Float.BYTES, NATIVE);
            acc = FloatVector.fromArray(F, q, qo + k).fma(kv, acc);
        }
        float s = Lanes.sum(acc);
        for (; k < d; k++) s += q[qo + k] * keys.get(FLOAT, (at + k) * Float.BYTES);
        return s;
    }

    private static void attendBf16(AttentionLayout l, int t, int h, float scale, float[] q, MemorySegment kCache,
                                   MemorySegment vCache, float[] out, float[] sc, float[] qe, float[] qOdd,
                                   float[] accEven, float[] accOdd) {
        int d = l.headDim(), kvHeads = l.kvHeads();
        int qo = t * l.heads() * d + h * d;
        int kvh = h / (l.heads() / kvHeads);
        int[] table = l.blockTables()[l.tokenSeq()[t]];
        int bs = l.blockSize();
        int n = l.positions()[t] + 1;
        int pairs = d / 2, bound = I.loopBound(pairs);
        for (int i = 0; i < pairs; i++) {
            qe[i] = q[qo + 2 * i];
            qOdd[i] = q[qo + 2 * i + 1];
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d);
            for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                float s = dotBf16(q, qo, qe, qOdd, kCache, base + (long) o * d, d, bound) * scale;
                sc[b0 + o] = s;
                if (s > max) max = s;
            }
        }
        float inv = 1f / softmax(sc, n, max);
        // Sums of p_j v_j over all j, a vector of element pairs at a time: even elements in one register, odd in another.
        int k = 0;
        for (; k < bound; k += I.length()) {
            FloatVector e = FloatVector.zero(F), od = e;
            for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
                long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d);
                for (int o = 0, count = Math.min(bs, n - b0); o < count; o++) {
                    IntVector v = IntVector.fromMemorySegment(I, vCache, 2 * (base + (long) o * d) + 4L * k, ByteOrder.LITTLE_ENDIAN);
                    FloatVector p = FloatVector.broadcast(F, sc[b0 + o]);
                    e = even(v).fma(p, e);
                    od = odd(v).fma(p, od);
                }
            }
            e.mul(inv).intoArray(accEven, k);
            od.mul(inv).intoArray(accOdd, k);
        }
        for (int i = 0; i < k; i++) {
            out[qo + 2 * i] = accEven[i];
            out[qo + 2 * i + 1] = accOdd[i];
        }
        for (int i = 2 * k; i < d; i++) {
            float acc = 0f;
            for (int p = 0; p < n; p++) {
                acc += sc[p] * bf16(vCache, KvCache.offset(table[p / bs], kvh, p % bs, kvHeads, bs, d) + i);
            }
            out[qo + i] = acc * inv;
        }
    }

    /** q[qo, qo + d) . bf16 keys at element {@code at}; qe, qOdd: the query's even and odd elements. */
    private static float dotBf16(float[] q, int qo, float[] qe, float[] qOdd, MemorySegment keys, long at, int d, int bound) {
        FloatVector e = FloatVector.zero(F), od = e;
        int k = 0;
        for (; k < bound; k += I.length()) {
            IntVector v = IntVector.fromMemorySegment(I, keys, 2 * at + 4L * k, ByteOrder.LITTLE_ENDIAN);
            e = even(v).fma(FloatVector.fromArray(F, qe, k), e);
            od = odd(v).fma(FloatVector.fromArray(F, qOdd, k), od);
        }
        float s = Lanes.sum(e.add(od));
        for (int i = 2 * k; i < d; i++) s += q[qo + i] * bf16(keys, at + i);
        return s;
    }

    /** The even element of each lane's pair (little-endian: the low half), widened exactly. */
    private static FloatVector even(IntVector v) {
        return v.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /** The odd element of each lane's pair (the high half). */
    private static FloatVector odd(IntVector v) {
        return v.and(0xFFFF0000).reinterpretAsFloats();
    }

    private static float bf16(MemorySegment s, long element) {
        return DTypeConvert.bf16ToFloat(s.get(DTypeConvert.LE_SHORT, 2 * element));
    }

    /** sc[0, n) = exp(sc - max), returning their sum (VectorExp: the same bits in every JIT tier). */
    private static float softmax(float[] sc, int n, float max) {
        return VectorExp.expMinusMax(sc, n, max);
    }
}
