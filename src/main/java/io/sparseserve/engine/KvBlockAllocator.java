package io.sparseserve.engine;

/** A free list of fixed-size KV-cache blocks. Not thread-safe: the scheduler thread owns it. */
public final class KvBlockAllocator {
    private final int[] free;
    private int top;

    public KvBlockAllocator(int blocks) {
        free = new int[blocks];
        for (int i = 0; i < blocks; i++) free[i] = blocks - 1 - i;
        top = blocks;
    }

    /** A free block's index, or -1 when none is left. */
    public int allocate() {
        return top == 0 ? -1 : free[--top];
    }

    public void release(int block) {
        free[top++] = block;
    }

    public int freeBlocks() {
        return top;
    }

    public int totalBlocks() {
        return free.length;
    }
}
