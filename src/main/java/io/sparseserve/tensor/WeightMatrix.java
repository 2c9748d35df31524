package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * A weight matrix of {@code rows} output features by {@code cols} input features (Hugging Face / PyTorch
 * {@code nn.Linear} layout), in one storage format. Kernels never read a format directly: they ask it to decode a
 * panel of rows into float32 scratch that stays in L1, then run one float32 micro-kernel on the panel. Each format
 * therefore has a single hot spot, {@link #decode}, and compressed formats stream fewer bytes from memory.
 */
public sealed interface WeightMatrix permits DenseMatrix, MaskedMatrix {

    int rows();

    int cols();

    /** Element type of the stored values. */
    DType dtype();

    /** Storage format name as reported by inspect: "dense", "sparse-bitmask", "sparse-24-bitmask". */
    String format();

    /** Bytes this matrix occupies in memory (values plus any index structures). */
    long bytes();

    /** The memory it occupies, {@link #bytes} in all: what a product with one vector has to stream. */
    List<MemorySegment> segments();

    /** Bytes the same matrix would take stored dense in its dtype. */
    default long denseBytes() {
        return (long) rows() * cols() * dtype().bytes();
    }

    /** Number of stored elements that are exactly zero or absent (cost: a scan for dense matrices). */
    long zeros();

    /**
     * Writes rows [r0, r0 + nRows) and columns [k0, k0 + len) as float32 into {@code dst}, row i of the panel at
     * {@code dstOff + i * len}. Absent (pruned) elements decode to 0.
     */
    void decode(int r0, int nRows, int k0, int len, float[] dst, int dstOff);
}
