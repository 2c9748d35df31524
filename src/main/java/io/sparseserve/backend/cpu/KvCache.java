package io.sparseserve.backend.cpu;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DTypeConvert;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * The CPU runner's paged KV storage (as in vLLM's PagedAttention): per layer, one run of fixed-size blocks of keys
 * and one of values, in float32 or bfloat16 ({@code --kv-dtype}). A block holds blockSize positions laid out
 * head-major, [kvHeads][blockSize][headDim] ({@link #offset}), so that attention reads one head's keys and values of a
 * block as one contiguous run. Which blocks a sequence owns is the engine's business (its block tables); this only
 * stores.
 *
 * <p>The blocks live off the Java heap, in one native mapping owned by a shared arena ({@link AnonymousMemory}; shared
 * because the pool's threads read it), freed by {@link #close}: the heap then holds only request state, and a
 * long-context cache is bounded by the machine's memory, not by {@code -Xmx}. Native, not heap-backed, segments:
 * the Vector API loads from them at full speed (heap-backed segments were measured 25x slower).
 */
public final class KvCache implements AutoCloseable {
    private final int layers;
    private final int kvDim;
    private final int kvHeads;
    private final int headDim;
    private final int blockSize;
    private final int blocks;
    private final KvDtype dtype;
    private final Arena arena;
    private final MemorySegment[] keys;
    private final MemorySegment[] values;

    /** A float32 cache (pruning's one-layer cache). */
    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int blocks) {
        this(layers, kvHeads, headDim, blockSize, blocks, KvDtype.F32);
    }

    public KvCache(int layers, int kvHeads, int headDim, int blockSize, int blocks, KvDtype dtype) {
        if (layers < 1 || kvHeads < 1 || headDim < 1 || blockSize < 1 || blocks < 1) {
            throw new IllegalArgumentException("KV cache of " + layers + " layers, " + kvHeads + " heads of " + headDim
                    + ", " + blocks + " blocks of " + blockSize);
        }
        this.layers = layers;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.kvDim = kvHeads * headDim;
        this.blockSize = blockSize;
        this.blocks = blocks;
        this.dtype = dtype;
        long run = layerBytes(kvHeads, headDim, blockSize, blocks, dtype);
        this.arena = Arena.ofShared();
        try {
            MemorySegment all = AnonymousMemory.allocate(2 * layers * run, arena);
            this.keys = new MemorySegment[layers];
            this.values = new MemorySegment[layers];
            for (int l = 0; l < layers; l++) {
                keys[l] = all.asSlice(2 * l * run, run);
                values[l] = all.asSlice((2L * l + 1) * run, run);
            }
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    /** Bytes of one layer's keys (or values). */
    static long layerBytes(int kvHeads, int headDim, int blockSize, int blocks, KvDtype dtype) {
        return (long) blocks * blockSize * kvHeads * headDim * dtype.bytes();
    }

    /**
     * Element offset, within a layer's keys (or values), of position {@code offset} of KV head {@code kvHead} in block
     * {@code block}: blocks are laid out [kvHeads][blockSize][headDim]. Multiply by the dtype's bytes for a byte offset.
     */
    static long offset(int block, int kvHead, int offset, int kvHeads, int blockSize, int headDim) {
        return (((long) block * kvHeads + kvHead) * blockSize + offset) * headDim;
    }

    /**
     * Writes the keys and values of token rows into their slots for one layer: copied as they are (f32) or rounded to
     * the nearest bfloat16, ties to even (bf16).
     */
    void store(int layer, float[] k, float[] v, int tokens, int[] positions, int[] tokenSeq, int[][] tables) {
        MemorySegment ks = keys[layer], vs = values[layer];
        for (int t = 0; t < tokens; t++) {
            int p = positions[t];
            int block = tables[tokenSeq[t]][p / blockSize], offset = p % blockSize;
            for (int h = 0; h < kvHeads; h++) {
                long to = offset(block, h, offset, kvHeads, blockSize, headDim);
                int from = t * kvDim + h * headDim;
                switch (dtype) {
                    case F32 -> {
                        MemorySegment.copy(k, from, ks, ValueLayout.JAVA_FLOAT, to * Float.BYTES, headDim);
                        MemorySegment.copy(v, from, vs, ValueLayout.JAVA_FLOAT, to * Float.BYTES, headDim);
                    }
                    case BF16 -> {
                        for (int i = 0; i < headDim; i++) {
                            ks.set(ValueLayout.JAVA_SHORT, 2 * (to + i), DTypeConvert.floatToBf16(k[from + i]));
                            vs.set(ValueLayout.JAVA_SHORT, 2 * (to + i), DTypeConvert.floatToBf16(v[from + i]));
                        }
                    }
                }
            }
        }
    }

    MemorySegment keys(int layer) {
        return keys[layer];
    }

    MemorySegment values(int layer) {
        return values[layer];
    }

    public KvDtype dtype() {
        return dtype;
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

    /** Native bytes held: keys and values of every layer. */
    public long bytes() {
        return 2L * layers * layerBytes(kvHeads, headDim, blockSize, blocks, dtype);
    }

    /** Frees the native memory; a step after this fails (the segments are closed). Idempotent. */
    @Override
    public void close() {
        if (arena.scope().isAlive()) arena.close();
    }
}
