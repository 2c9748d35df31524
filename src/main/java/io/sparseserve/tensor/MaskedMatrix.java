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

    /** Bytes of one row of the bitmask. */
    default int maskRowBytes() {
        return Bitmask.rowBytes(cols());
    }
}
