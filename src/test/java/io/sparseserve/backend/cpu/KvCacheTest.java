package io.sparseserve.backend.cpu;

import static io.sparseserve.tensor.TestMatrices.randomVector;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DTypeConvert;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

/** The KV cache's native storage: where a slot lies, what it holds in each dtype, its bytes, and its release. */
class KvCacheTest {
    // 3 layers, 2 KV heads of 6, blocks of 4 positions, 5 blocks; two sequences whose tables are scattered.
    private static final int LAYERS = 3, HEADS = 2, D = 6, BS = 4, BLOCKS = 5;
    private static final int[][] TABLES = {{3, 0}, {4, 1, 2}};

    @Test
    void f32SlotsHoldTheRowsExactlyOffTheHeap() {
        try (KvCache c = new KvCache(LAYERS, HEADS, D, BS, BLOCKS, KvDtype.F32)) {
            int[] positions = {5, 0, 9}, seq = {0, 1, 1};
            float[] k = randomVector(3 * HEADS * D, 1), v = randomVector(3 * HEADS * D, 2);
            c.store(2, k, v, 3, positions, seq, TABLES);
            assertTrue(c.keys(2).isNative() && c.values(0).isNative(), "native memory, not the Java heap");
            assertEquals(2L * LAYERS * BLOCKS * BS * HEADS * D * 4, c.bytes());
            for (int t = 0; t < 3; t++) {
                int block = TABLES[seq[t]][positions[t] / BS];
                for (int h = 0; h < HEADS; h++) {
                    for (int i = 0; i < D; i++) {
                        long at = 4 * (KvCache.offset(block, h, positions[t] % BS, HEADS, BS, D) + i);
                        assertEquals(k[t * HEADS * D + h * D + i], c.keys(2).get(ValueLayout.JAVA_FLOAT, at));
                        assertEquals(v[t * HEADS * D + h * D + i], c.values(2).get(ValueLayout.JAVA_FLOAT, at));
                    }
                }
            }
        }
    }

    @Test
    void bf16SlotsHoldTheRowsRoundedToNearestEvenInHalfTheBytes() {
        try (KvCache c = new KvCache(LAYERS, HEADS, D, BS, BLOCKS, KvDtype.BF16)) {
            assertEquals(2L * LAYERS * BLOCKS * BS * HEADS * D * 2, c.bytes());
            float[] k = randomVector(HEADS * D, 3), v = randomVector(HEADS * D, 4);
            // Ties: 1 + 2^-8 is halfway between bf16 1 and 1 + 2^-7 (even: down); 1 + 3 * 2^-8 rounds up to 1 + 2^-6.
            k[0] = 1f + 0x1p-8f;
            k[1] = 1f + 3 * 0x1p-8f;
            k[2] = Float.NaN;
            c.store(1, k, v, 1, new int[] {6}, new int[] {1}, TABLES);
            for (int h = 0; h < HEADS; h++) {
                for (int i = 0; i < D; i++) {
                    long at = 2 * (KvCache.offset(1, h, 2, HEADS, BS, D) + i);
                    assertEquals(DTypeConvert.floatToBf16(k[h * D + i]), c.keys(1).get(DTypeConvert.LE_SHORT, at));
                    assertEquals(DTypeConvert.floatToBf16(v[h * D + i]), c.values(1).get(DTypeConvert.LE_SHORT, at));
                }
            }
            long first = 2 * KvCache.offset(1, 0, 2, HEADS, BS, D);
            assertEquals(1f, DTypeConvert.bf16ToFloat(c.keys(1).get(DTypeConvert.LE_SHORT, first)));
            assertEquals(1f + 0x1p-6f, DTypeConvert.bf16ToFloat(c.keys(1).get(DTypeConvert.LE_SHORT, first + 2)));
            assertTrue(Float.isNaN(DTypeConvert.bf16ToFloat(c.keys(1).get(DTypeConvert.LE_SHORT, first + 4))));
        }
    }

    @Test
    void closingFreesTheMemoryOnceAndLaterAccessFails() {
        KvCache c = new KvCache(1, 1, 8, 16, 2, KvDtype.F32);
        var keys = c.keys(0);
        c.close();
        c.close();
        assertThrows(IllegalStateException.class, () -> keys.get(ValueLayout.JAVA_FLOAT, 0));
    }

    @Test
    void aCacheLargerThanTheJavaHeapOpensAtOnceAndHoldsItsLastBlock() {
        // Twice the heap's limit: impossible in heap arrays; off the heap, untouched pages cost nothing.
        long bytes = 2 * Runtime.getRuntime().maxMemory();
        int d = 64, bs = 16;
        int blocks = (int) (bytes / (2L * bs * d * 4)) + 1;
        org.junit.jupiter.api.Assumptions.assumeTrue(bytes < io.sparseserve.backend.HostMemory.read().totalBytes() / 2,
                "this machine has too little memory for a cache of twice the heap (" + bytes + " bytes)");
        try (KvCache c = new KvCache(1, 1, d, bs, blocks, KvDtype.F32)) {
            assertTrue(c.bytes() > Runtime.getRuntime().maxMemory(), "bytes " + c.bytes());
            float[] k = randomVector(d, 5), v = randomVector(d, 6);
            c.store(0, k, v, 1, new int[] {bs - 1}, new int[] {0}, new int[][] {{blocks - 1}});
            long at = 4 * KvCache.offset(blocks - 1, 0, bs - 1, 1, bs, d);
            assertEquals(k[d - 1], c.keys(0).get(ValueLayout.JAVA_FLOAT, at + 4L * (d - 1)));
            assertEquals(v[0], c.values(0).get(ValueLayout.JAVA_FLOAT, at));
        }
    }
}
