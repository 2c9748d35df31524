package io.sparseserve.engine;

import java.util.Arrays;

/** The KV-cache blocks one sequence holds, in position order: position p lives in block blocks[p / blockSize]. */
public final class BlockTable {
    private final KvBlockAllocator allocator;
    private final int blockSize;
    private int[] blocks = new int[4];
    private int count;

    public BlockTable(KvBlockAllocator allocator, int blockSize) {
        this.allocator = allocator;
        this.blockSize = blockSize;
    }

    /** Makes room for positions [0, tokens); false (and nothing allocated) when the pool cannot cover it. */
    public boolean ensure(int tokens) {
        int need = (tokens + blockSize - 1) / blockSize - count;
        if (need <= 0) return true;
        if (need > allocator.freeBlocks()) return false;
        if (count + need > blocks.length) blocks = Arrays.copyOf(blocks, Math.max(2 * blocks.length, count + need));
        for (int i = 0; i < need; i++) blocks[count++] = allocator.allocate();
        return true;
    }

    /** Returns every block to the pool. */
    public void release() {
        for (int i = 0; i < count; i++) allocator.release(blocks[i]);
        count = 0;
    }

    public int[] blocks() {
        return blocks;
    }

    public int blockCount() {
        return count;
    }

    public int capacity() {
        return count * blockSize;
    }
}
