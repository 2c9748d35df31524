package io.sparseserve.engine;

import io.sparseserve.backend.Backend.AttentionLayout;
import io.sparseserve.model.ModelConfig;

/**
 * A paged KV cache (as in vLLM's PagedAttention): per layer, one array of fixed-size blocks of keys and one of
 * values. A block holds blockSize positions laid out head-major, [kvHeads][blockSize][headDim]
 * ({@link AttentionLayout#kvIndex}), so that attention reads one head's keys and values of a block as one contiguous
 * run. Sequences own blocks through {@link BlockTable}s, so memory is bounded by a budget instead of by the longest
 * possible sequence, and freed blocks are reused at once.
 */
public final class KvCache {
    public static final int DEFAULT_BLOCK_SIZE = 16;

    private final int layers;
    private final int kvDim;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final float[][] keys;
    private final float[][] values;
    private final KvBlockAllocator allocator;

    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int blocks) {
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kvDim = kvHeads * headDim;
        this.blockSize = blockSize;
        this.keys = new float[layers][];
        this.values = new float[layers][];
        long floats = (long) blocks * blockSize * kvDim;
        if (floats > Integer.MAX_VALUE - 8) throw new IllegalArgumentException("KV cache too large for one array per layer");
        for (int l = 0; l < layers; l++) {
            keys[l] = new float[(int) floats];
            values[l] = new float[(int) floats];
        }
        this.allocator = new KvBlockAllocator(blocks);
    }

    /** A cache of as many blocks as fit in {@code bytes}. */
    public static KvCache forBudget(ModelConfig c, long bytes, int blockSize) {
        long perBlock = bytesPerToken(c) * blockSize;
        int blocks = (int) Math.max(1, Math.min(Integer.MAX_VALUE, bytes / perBlock));
        return new KvCache(c.layers(), c.kvHeads(), c.headDim(), blockSize, blocks);
    }

    /** A cache that holds {@code tokens} positions in total. */
    public static KvCache forTokens(ModelConfig c, int tokens) {
        return new KvCache(c.layers(), c.kvHeads(), c.headDim(), DEFAULT_BLOCK_SIZE, (tokens + DEFAULT_BLOCK_SIZE - 1) / DEFAULT_BLOCK_SIZE);
    }

    public static long bytesPerToken(ModelConfig c) {
        return 2L * c.layers() * c.kvDim() * Float.BYTES;
    }

    public BlockTable newTable() {
        return new BlockTable(allocator, blockSize);
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

    public int freeBlocks() {
        return allocator.freeBlocks();
    }

    public int totalBlocks() {
        return allocator.totalBlocks();
    }

    /** Fraction of blocks in use, for the KV-usage gauge. */
    public double usage() {
        return 1.0 - (double) allocator.freeBlocks() / allocator.totalBlocks();
    }

    public long bytes() {
        return 2L * layers * allocator.totalBlocks() * blockSize * kvDim * Float.BYTES;
    }
}
