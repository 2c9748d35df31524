package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;

/**
 * A compressed sparse matrix stored as compressed-tensors stores it: the kept values in row-major order and a packed
 * bitmask of [rows, ceil(cols / 8)] bytes, bit c % 8 of byte c / 8 of a row set where column c is kept. The formats
 * differ only in how a row finds its first value: a table of offsets ({@link BitmaskMatrix}) or a fixed count per
 * row ({@link NmMatrix}). Kernels read the two through this view.
 */
public sealed interface MaskedMatrix extends WeightMatrix permits BitmaskMatrix, NmMatrix {

    MemorySegment values();

    MemorySegment bitmask();

    /** Index in {@link #values} of row {@code r}'s first kept value; for r = rows, the number of kept values. */
    long valueIndex(int r);

    /**
     * The kept values and the bitmask as one segment, or null where they were given apart (a file's mapping): the
     * values from byte 0, then at least 64 bytes of zeros (a vector load from any value stays inside), then the
     * bitmask from byte {@link #maskAt}. The batch-1 decode kernel reads both through it: with two segments C2 kept
     * more offsets and checks in the loop (one thread, in L1: 1.1-1.2 ns per 16 columns of a row against 0.8-0.95).
     * Matrices compressed or copied at load ({@link ZeroCompression}) and built by {@code fromDense} have one.
     */
    MemorySegment block();

    /** Byte offset of the bitmask in {@link #block}. */
    long maskAt();

    /** Bytes of one row of the bitmask. */
    default int maskRowBytes() {
        return Bitmask.rowBytes(cols());
    }
}
