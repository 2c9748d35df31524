package io.sparseserve.backend.cpu;

import static io.sparseserve.tensor.TestMatrices.randomVector;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.backend.Backend.AttentionLayout;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DTypeConvert;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Paged, grouped-query causal attention over native KV memory against a naive double-precision reference, for both KV
 * dtypes: bf16 keys and values are read as the bf16 values stored (the reference sees the same rounded numbers).
 */
class CpuAttentionTest {

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void matchesNaiveAttentionThroughScatteredBlocks(KvDtype dtype) {
        // Two sequences whose blocks are scattered over the cache; the step holds the last 2 tokens of seq 0 and the
        // last 5 of seq 1. A head width that is not a multiple of the vector length exercises the scalar tails.
        check(dtype, 4, 2, 20, 4, 16, new int[][] {{7, 2, 11}, {0, 15, 3, 9}},
                new int[] {0, 0, 1, 1, 1, 1, 1}, new int[] {7, 8, 9, 10, 11, 12, 13});
    }

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void matchesNaiveAttentionOverLongContextsWithVectorWideHeads(KvDtype dtype) {
        // Head width 64 and up to 150 attended positions: the vector softmax and the vector accumulation of values.
        int[] seq0 = new int[10], seq1 = new int[10];
        for (int i = 0; i < 10; i++) {
            seq0[i] = 2 * i + 1;
            seq1[i] = 18 - 2 * i;
        }
        check(dtype, 6, 3, 64, 16, 20, new int[][] {seq0, seq1}, new int[] {0, 1, 1}, new int[] {149, 97, 98});
    }

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void oddHeadWidthsAndWidthsPastOneVector(KvDtype dtype) {
        // 2 x vector width + 6 (pairs past the vector bound), and an odd width (a last element without a pair).
        int w = 2 * FloatVector.SPECIES_PREFERRED.length() + 6;
        check(dtype, 2, 1, w, 8, 6, new int[][] {{5, 0, 3}}, new int[] {0, 0}, new int[] {17, 20});
        check(dtype, 2, 2, 13, 8, 6, new int[][] {{1, 4, 2}}, new int[] {0}, new int[] {22});
    }

    @ParameterizedTest
    @EnumSource(KvDtype.class)
    void fourKeysAtOnceGiveEachKeysScoreBitForBit(KvDtype dtype) {
        // The scores are computed four keys at a time where a block has four left, one at a time otherwise: a key's
        // score must not depend on which (a token's logits would depend on its position within a block).
        int n = FloatVector.SPECIES_PREFERRED.length();
        for (int d : new int[] {n, 4 * n, 4 * n + 6, 2 * n + 1, 13, 64, 128}) {
            float[] keys = randomVector(4 * d, 7 + d), q = randomVector(d + 3, 11 + d);
            float[] lanes = new float[n];
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment ks = native_(arena, keys, dtype);
                if (dtype == KvDtype.F32) {
                    CpuAttention.dot4F32(q, 3, ks, 0, d, lanes);
                    for (int j = 0; j < 4; j++) {
                        float alone = CpuAttention.dotF32(q, 3, ks, (long) j * d, d);
                        assertEquals(Float.floatToIntBits(alone), Float.floatToIntBits(CpuAttention.tailF32(lanes[j], q, 3, ks, (long) j * d, d)),
                                "d=" + d + " key " + j);
                    }
                } else {
                    int pairs = d / 2, bound = jdk.incubator.vector.IntVector.SPECIES_PREFERRED.loopBound(pairs);
                    float[] qe = new float[pairs], qo = new float[pairs];
                    for (int i = 0; i < pairs; i++) {
                        qe[i] = q[3 + 2 * i];
                        qo[i] = q[3 + 2 * i + 1];
                    }
                    CpuAttention.dot4Bf16(qe, qo, ks, 0, d, bound, lanes);
                    for (int j = 0; j < 4; j++) {
                        float alone = CpuAttention.dotBf16(q, 3, qe, qo, ks, (long) j * d, d, bound);
                        assertEquals(Float.floatToIntBits(alone),
                                Float.floatToIntBits(CpuAttention.tailBf16(lanes[j], q, 3, ks, (long) j * d, d, bound)), "d=" + d + " key " + j);
                    }
                }
            }
        }
    }

    @Test
    void theBalancedOrderVisitsEveryTokenOnce() {
        for (int n = 1; n < 40; n++) {
            boolean[] seen = new boolean[n];
            for (int i = 0; i < n; i++) {
                int t = CpuAttention.balanced(i, n);
                assertEquals(false, seen[t], "n=" + n + " token " + t + " twice");
                seen[t] = true;
            }
        }
    }

    private static void check(KvDtype dtype, int heads, int kvHeads, int d, int bs, int blocks, int[][] tables, int[] tokenSeq,
                              int[] positions) {
        int kvDim = kvHeads * d, qDim = heads * d;
        float[] kCache = randomVector(blocks * bs * kvDim, 1), vCache = randomVector(blocks * bs * kvDim, 2);
        int tokens = tokenSeq.length;
        float[] q = randomVector(tokens * qDim, 3), out = new float[tokens * qDim];
        try (Arena arena = Arena.ofShared()) {
            MemorySegment ks = native_(arena, kCache, dtype), vs = native_(arena, vCache, dtype);
            new CpuAttention(new CpuPool(2), 256).attend(
                    new AttentionLayout(tokens, positions, tokenSeq, tables, bs, heads, kvHeads, d), q, ks, vs, dtype, out);
        }
        for (int t = 0; t < tokens; t++) {
            int[] table = tables[tokenSeq[t]];
            for (int h = 0; h < heads; h++) {
                int kvh = h / (heads / kvHeads);
                int n = positions[t] + 1;
                double[] s = new double[n];
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    double dot = 0;
                    for (int i = 0; i < d; i++) dot += (double) q[t * qDim + h * d + i] * kCache[at(table, j, bs, kvHeads, kvh, d) + i];
                    s[j] = dot / Math.sqrt(d);
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < n; j++) sum += s[j] = Math.exp(s[j] - max);
                for (int i = 0; i < d; i++) {
                    double ref = 0;
                    for (int j = 0; j < n; j++) ref += s[j] / sum * vCache[at(table, j, bs, kvHeads, kvh, d) + i];
                    assertEquals(ref, out[t * qDim + h * d + i], 1e-5, "t=" + t + " h=" + h + " i=" + i);
                }
            }
        }
    }

    /** The cache in native memory as the dtype stores it; the array is left holding the values stored. */
    private static MemorySegment native_(Arena arena, float[] values, KvDtype dtype) {
        MemorySegment s = arena.allocate((long) values.length * dtype.bytes(), 64);
        for (int i = 0; i < values.length; i++) {
            if (dtype == KvDtype.F32) {
                s.setAtIndex(ValueLayout.JAVA_FLOAT, i, values[i]);
            } else {
                short b = DTypeConvert.floatToBf16(values[i]);
                s.setAtIndex(DTypeConvert.LE_SHORT, i, b);
                values[i] = DTypeConvert.bf16ToFloat(b);
            }
        }
        return s;
    }

    /** Where position j's keys (or values) for KV head kvh start: blocks are [kvHeads][blockSize][headDim]. */
    private static int at(int[] table, int j, int bs, int kvHeads, int kvh, int d) {
        return ((table[j / bs] * kvHeads + kvh) * bs + j % bs) * d;
    }
}
