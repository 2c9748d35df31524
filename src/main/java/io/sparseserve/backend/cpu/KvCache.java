package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend.AttentionLayout;

/**
 * The CPU runner's paged KV storage (as in vLLM's PagedAttention): per layer, one array of fixed-size blocks of keys
 * and one of values, in float32. A block holds blockSize positions laid out head-major, [kvHeads][blockSize][headDim]
 * ({@link AttentionLayout#kvIndex}), so that attention reads one head's keys and values of a block as one contiguous
 * run. Which blocks a sequence owns is the engine's business (its block tables); this only stores.
 */
public final class KvCache {
    private final int layers;
    private final int kvDim;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int blocks;
    private final float[][] keys;
    private final float[][] values;

    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int blocks) {
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kvDim = kvHeads * headDim;
        this.blockSize = blockSize;
        this.blocks = blocks;
        this.keys = new float[layers][];
        this.values = new float[layers][];
        long floats = (long) blocks * blockSize * kvDim;
        if (floats > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("KV cache too large for one array per layer");
        for (int l = 0; l < layers; l++) {
            keys[l] = new float[(int) floats];
            values[l] = new float[(int) floats];
        }
    }

    /** Copies the keys and values of token rows into their slots for one layer. */
    void store(int layer, float[] k, float[] v, int tokens, int[] positions, int[] tokenSeq, int[][] tables) {
        for (int t = 0; t < tokens; t++) {
            int p = positions[t];
            int block = tables[tokenSeq[t]][p / blockSize], offset = p % blockSize;
            for (int h = 0; h < kvHeads; h++) {
                int to = AttentionLayout.kvIndex(block, h, offset, kvHeads, blockSize, headDim);
                System.arraycopy(k, t * kvDim + h * headDim, keys[layer], to, headDim);
                System.arraycopy(v, t * kvDim + h * headDim, values[layer], to, headDim);
            }
        }
    }

    float[] keys(int layer) {
        return keys[layer];
    }

    float[] values(int layer) {
        return values[layer];
    }

    public int blockSize() {
        return blockSize;
    }

    public int layers() {
        return layers;
    }

    public int blocks() {
        return blocks;
    }

    public long bytes() {
        return 2L * layers * blocks * blockSize * kvDim * Float.BYTES;
    }
}
