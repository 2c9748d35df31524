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
    private final float[][] four; // per thread: four keys' lane sums (dot4F32, dot4Bf16)

    public CpuAttention(CpuPool pool, int maxContext) {
        this.pool = pool;
        int threads = pool.threads();
        this.scores = new float[threads][maxContext];
        this.evens = new float[threads][0];
        this.odds = new float[threads][0];
        this.sumEven = new float[threads][0];
        this.sumOdd = new float[threads][0];
        this.four = new float[threads][F.length()];
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
                // Head-major: consecutive pairs read the same head's keys and values, which stay in L2 (token-major,
                // each pair read another head's: 13% slower attention in a 256-token prefill, one thread, measured).
                int h = pair / l.tokens(), t = balanced(pair % l.tokens(), l.tokens());
                if (bf16) {
                    attendBf16(l, t, h, scale, q, kCache, vCache, out, scores[thread], evens[thread], odds[thread],
                            sumEven[thread], sumOdd[thread], four[thread]);
                } else {
                    attendF32(l, t, h, scale, q, kCache, vCache, out, scores[thread], four[thread]);
                }
            }
        }
    }

    /**
     * The token of the i-th of n slots, in the order first, last, second, second to last, ...: a prompt's tokens
     * attend to 1, 2, ..., n positions, so the pool's contiguous chunks of slots get equal work (in token order, the
     * thread with the last tokens of a 256-token prefill had three times the other's work, measured as the step
     * waiting on it). Each (token, head) is computed alone, so the order changes no result.
     */
    static int balanced(int i, int n) {
        return (i & 1) == 0 ? i >>> 1 : n - 1 - (i >>> 1);
    }

    private static void attendF32(AttentionLayout l, int t, int h, float scale, float[] q, MemorySegment kCache,
                                  MemorySegment vCache, float[] out, float[] sc, float[] four) {
        int d = l.headDim(), kvHeads = l.kvHeads();
        int qo = t * l.heads() * d + h * d;
        int kvh = h / (l.heads() / kvHeads);
        int[] table = l.blockTables()[l.tokenSeq()[t]];
        int bs = l.blockSize();
        int n = l.positions()[t] + 1;
        float max = Float.NEGATIVE_INFINITY;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d);
            int o = 0, count = Math.min(bs, n - b0);
            // Four keys at a time: four independent chains, reduced together (the order of one key alone).
            for (; o + 4 <= count; o += 4) {
                dot4F32(q, qo, kCache, base + (long) o * d, d, four);
                for (int j = 0; j < 4; j++) {
                    float s = tailF32(four[j], q, qo, kCache, base + (long) (o + j) * d, d) * scale;
                    sc[b0 + o + j] = s;
                    if (s > max) max = s;
                }
            }
            for (; o < count; o++) {
                float s = dotF32(q, qo, kCache, base + (long) o * d, d) * scale;
                sc[b0 + o] = s;
                if (s > max) max = s;
            }
        }
        float inv = 1f / softmax(sc, n, max);
        // out = sum_j p_j v_j, four vectors of output dimensions at a time (four independent chains: one alone waits on
        // its multiply-add's latency every key), then one at a time; each sum kept in a register over all j.
        int bound = F.loopBound(d), i = 0;
        for (; i + 4 * F.length() <= bound; i += 4 * F.length()) {
            valuesF32(sc, n, table, kvh, kvHeads, bs, d, vCache, i, inv, out, qo + i);
        }
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

    /**
     * out[o, o + 4N) = inv * sum_j sc[j] v_j[i, i + 4N) over the n positions: per element the chain of {@link
     * #attendF32}'s one-vector loop (the positions in order, then the multiplication by inv).
     */
    private static void valuesF32(float[] sc, int n, int[] table, int kvh, int kvHeads, int bs, int d, MemorySegment vCache,
                                  int i, float inv, float[] out, int o) {
        int L = F.length();
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d) + i;
            for (int p = 0, count = Math.min(bs, n - b0); p < count; p++) {
                long at = (base + (long) p * d) * Float.BYTES;
                FloatVector w = FloatVector.broadcast(F, sc[b0 + p]);
                a0 = FloatVector.fromMemorySegment(F, vCache, at, NATIVE).fma(w, a0);
                a1 = FloatVector.fromMemorySegment(F, vCache, at + 4L * L, NATIVE).fma(w, a1);
                a2 = FloatVector.fromMemorySegment(F, vCache, at + 8L * L, NATIVE).fma(w, a2);
                a3 = FloatVector.fromMemorySegment(F, vCache, at + 12L * L, NATIVE).fma(w, a3);
            }
        }
        a0.mul(inv).intoArray(out, o);
        a1.mul(inv).intoArray(out, o + L);
        a2.mul(inv).intoArray(out, o + 2 * L);
        a3.mul(inv).intoArray(out, o + 3 * L);
    }

    /** q[qo, qo + d) . keys at element {@code at}: the arithmetic of {@link CpuMatmul#dot}, so f32 results are unchanged. */
    static float dotF32(float[] q, int qo, MemorySegment keys, long at, int d) {
        FloatVector acc = FloatVector.zero(F);
        int bound = F.loopBound(d);
        for (int k = 0; k < bound; k += F.length()) {
            FloatVector kv = FloatVector.fromMemorySegment(F, keys, (at + k) * Float.BYTES, NATIVE);
            acc = FloatVector.fromArray(F, q, qo + k).fma(kv, acc);
        }
        return tailF32(Lanes.sum(acc), q, qo, keys, at, d);
    }

    /**
     * The vector part of {@link #dotF32} for the four keys at elements at, at + d, at + 2d, at + 3d, into lanes[0, 4)
     * (lanes: N floats of scratch): each key's chain and lane sum exactly as alone ({@link Lanes#sum4}); the scalar
     * tail is {@link #tailF32}'s. Four chains at once: one key's chain of multiply-adds and its reduction are a
     * latency chain, so a key at a time left the core mostly waiting (QK^T was 19% of a 70%-sparse prefill, measured).
     */
    static void dot4F32(float[] q, int qo, MemorySegment keys, long at, int d, float[] lanes) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int bound = F.loopBound(d);
        long b0 = at * Float.BYTES, b1 = b0 + (long) d * Float.BYTES, b2 = b1 + (long) d * Float.BYTES, b3 = b2 + (long) d * Float.BYTES;
        for (int k = 0; k < bound; k += F.length()) {
            FloatVector qv = FloatVector.fromArray(F, q, qo + k);
            long off = (long) k * Float.BYTES;
            a0 = qv.fma(FloatVector.fromMemorySegment(F, keys, b0 + off, NATIVE), a0);
            a1 = qv.fma(FloatVector.fromMemorySegment(F, keys, b1 + off, NATIVE), a1);
            a2 = qv.fma(FloatVector.fromMemorySegment(F, keys, b2 + off, NATIVE), a2);
            a3 = qv.fma(FloatVector.fromMemorySegment(F, keys, b3 + off, NATIVE), a3);
        }
        Lanes.sum4(a0, a1, a2, a3).intoArray(lanes, 0);
    }

    /** s (a key's lane sum) plus the key's elements past the last full vector, in order: the end of {@link #dotF32}. */
    static float tailF32(float s, float[] q, int qo, MemorySegment keys, long at, int d) {
        for (int k = F.loopBound(d); k < d; k++) s += q[qo + k] * keys.get(FLOAT, (at + k) * Float.BYTES);
        return s;
    }

    private static void attendBf16(AttentionLayout l, int t, int h, float scale, float[] q, MemorySegment kCache,
                                   MemorySegment vCache, float[] out, float[] sc, float[] qe, float[] qOdd,
                                   float[] accEven, float[] accOdd, float[] four) {
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
            int o = 0, count = Math.min(bs, n - b0);
            for (; o + 4 <= count; o += 4) {
                dot4Bf16(qe, qOdd, kCache, base + (long) o * d, d, bound, four);
                for (int j = 0; j < 4; j++) {
                    float s = tailBf16(four[j], q, qo, kCache, base + (long) (o + j) * d, d, bound) * scale;
                    sc[b0 + o + j] = s;
                    if (s > max) max = s;
                }
            }
            for (; o < count; o++) {
                float s = dotBf16(q, qo, qe, qOdd, kCache, base + (long) o * d, d, bound) * scale;
                sc[b0 + o] = s;
                if (s > max) max = s;
            }
        }
        float inv = 1f / softmax(sc, n, max);
        // Sums of p_j v_j over all j, a vector of element pairs at a time: even elements in one register, odd in another;
        // two vectors of pairs at once where there are (independent chains, as attendF32's values).
        int k = 0;
        for (; k + 2 * I.length() <= bound; k += 2 * I.length()) {
            valuesBf16(sc, n, table, kvh, kvHeads, bs, d, vCache, k, inv, accEven, accOdd);
        }
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
    static float dotBf16(float[] q, int qo, float[] qe, float[] qOdd, MemorySegment keys, long at, int d, int bound) {
        FloatVector e = FloatVector.zero(F), od = e;
        for (int k = 0; k < bound; k += I.length()) {
            IntVector v = IntVector.fromMemorySegment(I, keys, 2 * at + 4L * k, ByteOrder.LITTLE_ENDIAN);
            e = even(v).fma(FloatVector.fromArray(F, qe, k), e);
            od = odd(v).fma(FloatVector.fromArray(F, qOdd, k), od);
        }
        return tailBf16(Lanes.sum(e.add(od)), q, qo, keys, at, d, bound);
    }

    /** The pairs [k, k + 2N) of {@link #attendBf16}'s sums of values, each with the chain of its one-vector loop. */
    private static void valuesBf16(float[] sc, int n, int[] table, int kvh, int kvHeads, int bs, int d, MemorySegment vCache,
                                   int k, float inv, float[] accEven, float[] accOdd) {
        int L = I.length();
        FloatVector e0 = FloatVector.zero(F), o0 = e0, e1 = e0, o1 = e0;
        for (int b0 = 0, bi = 0; b0 < n; b0 += bs, bi++) {
            long base = KvCache.offset(table[bi], kvh, 0, kvHeads, bs, d);
            for (int p = 0, count = Math.min(bs, n - b0); p < count; p++) {
                long at = 2 * (base + (long) p * d) + 4L * k;
                IntVector v0 = IntVector.fromMemorySegment(I, vCache, at, ByteOrder.LITTLE_ENDIAN);
                IntVector v1 = IntVector.fromMemorySegment(I, vCache, at + 4L * L, ByteOrder.LITTLE_ENDIAN);
                FloatVector w = FloatVector.broadcast(F, sc[b0 + p]);
                e0 = even(v0).fma(w, e0);
                o0 = odd(v0).fma(w, o0);
                e1 = even(v1).fma(w, e1);
                o1 = odd(v1).fma(w, o1);
            }
        }
        e0.mul(inv).intoArray(accEven, k);
        o0.mul(inv).intoArray(accOdd, k);
        e1.mul(inv).intoArray(accEven, k + L);
        o1.mul(inv).intoArray(accOdd, k + L);
    }

    /** {@link #dot4F32} for bf16 keys: each key's vector part as {@link #dotBf16} computes it, into lanes[0, 4). */
    static void dot4Bf16(float[] qe, float[] qOdd, MemorySegment keys, long at, int d, int bound, float[] lanes) {
        FloatVector e0 = FloatVector.zero(F), e1 = e0, e2 = e0, e3 = e0, o0 = e0, o1 = e0, o2 = e0, o3 = e0;
        long b0 = 2 * at, b1 = b0 + 2L * d, b2 = b1 + 2L * d, b3 = b2 + 2L * d;
        for (int k = 0; k < bound; k += I.length()) {
            FloatVector qv = FloatVector.fromArray(F, qe, k), qw = FloatVector.fromArray(F, qOdd, k);
            long off = 4L * k;
            IntVector v0 = IntVector.fromMemorySegment(I, keys, b0 + off, ByteOrder.LITTLE_ENDIAN);
            IntVector v1 = IntVector.fromMemorySegment(I, keys, b1 + off, ByteOrder.LITTLE_ENDIAN);
            IntVector v2 = IntVector.fromMemorySegment(I, keys, b2 + off, ByteOrder.LITTLE_ENDIAN);
            IntVector v3 = IntVector.fromMemorySegment(I, keys, b3 + off, ByteOrder.LITTLE_ENDIAN);
            e0 = even(v0).fma(qv, e0);
            o0 = odd(v0).fma(qw, o0);
            e1 = even(v1).fma(qv, e1);
            o1 = odd(v1).fma(qw, o1);
            e2 = even(v2).fma(qv, e2);
            o2 = odd(v2).fma(qw, o2);
            e3 = even(v3).fma(qv, e3);
            o3 = odd(v3).fma(qw, o3);
        }
        Lanes.sum4(e0.add(o0), e1.add(o1), e2.add(o2), e3.add(o3)).intoArray(lanes, 0);
    }

    /** s plus the bf16 key's elements past the pairs' vector bound, in order: the end of {@link #dotBf16}. */
    static float tailBf16(float s, float[] q, int qo, MemorySegment keys, long at, int d, int bound) {
        for (int i = 2 * bound; i < d; i++) s += q[qo + i] * bf16(keys, at + i);
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
