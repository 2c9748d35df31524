package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * A semi-structured N:M sparse matrix: in every group of M consecutive columns of a row exactly N values are kept.
 * Stored as compressed-tensors' {@code sparse-24-bitmask} does for 2:4: the kept values [rows, cols * N / M] in
 * row-major order and a packed bitmask [rows, ceil(cols / 8)]. Every group holding exactly N values, a column's value
 * position follows from its group index without a per-row offset table.
 */
public final class NmMatrix implements MaskedMatrix {
    private final MemorySegment values;
    private final MemorySegment bitmask;
    private final MemorySegment block; // values and bitmask in one segment, or null (MaskedMatrix.block)
    private final long maskAt;
    private final DType dtype;
    private final int rows;
    private final int cols;
    private final int n;
    private final int m;
    private final int rowBytes;
    private final long keptPerRow;

    /**
     * @param values  kept values, {@code dtype}, [rows, cols * n / m] row-major
     * @param bitmask U8 [rows, ceil(cols / 8)], exactly n bits set in each group of m columns
     * @throws IllegalArgumentException when sizes disagree or a group does not keep exactly n values
     */
    public NmMatrix(MemorySegment values, MemorySegment bitmask, DType dtype, int rows, int cols, int n, int m) {
        this(values, bitmask, dtype, rows, cols, n, m, null);
    }

    /** The values and mask of {@code block} (see {@link MaskedMatrix#block}). */
    NmMatrix(Bitmask.Block block, DType dtype, int rows, int cols, int n, int m) {
        this(block.values(), block.mask(), dtype, rows, cols, n, m, block);
    }

    private NmMatrix(MemorySegment values, MemorySegment bitmask, DType dtype, int rows, int cols, int n, int m,
                     Bitmask.Block block) {
        if (!dtype.isWeightType()) throw new IllegalArgumentException("values must be F32, F16 or BF16, not " + dtype);
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException("shape [" + rows + ", " + cols + "] must be positive");
        if (n < 1 || n >= m || m > 32) throw new IllegalArgumentException("pattern " + n + ":" + m + " needs 1 <= N < M <= 32");
        if (cols % m != 0) throw new IllegalArgumentException("columns " + cols + " are not a multiple of M = " + m);
        this.rowBytes = Bitmask.rowBytes(cols);
        if (bitmask.byteSize() != (long) rows * rowBytes) {
            throw new IllegalArgumentException("bitmask has " + bitmask.byteSize() + " bytes, shape [" + rows + ", " + cols
                    + "] needs [" + rows + ", " + rowBytes + "] = " + (long) rows * rowBytes);
        }
        this.keptPerRow = (long) cols / m * n;
        if (values.byteSize() != rows * keptPerRow * dtype.bytes()) {
            throw new IllegalArgumentException("values have " + values.byteSize() / dtype.bytes() + " elements, " + n + ":" + m
                    + " of [" + rows + ", " + cols + "] keeps " + rows * keptPerRow);
        }
        Bitmask.checkPadding(bitmask, rows, cols);
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < cols; g += m) {
                int count = Long.bitCount(Bitmask.bits(bitmask, (long) r * rowBytes, g, m));
                if (count != n) {
                    throw new IllegalArgumentException("row " + r + ", columns " + g + ".." + (g + m - 1) + " keep " + count
                            + " values, not " + n + " (" + n + ":" + m + ")");
                }
            }
        }
        this.values = values;
        this.bitmask = bitmask;
        this.block = block == null ? null : block.seg();
        this.maskAt = block == null ? 0 : block.maskAt();
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
        this.n = n;
        this.m = m;
    }

    /**
     * Compresses a row-major float matrix (the first rows · cols elements of {@code w}) with at most n non-zeros (after rounding to {@code dtype}) per group of m:
     * per group the n largest magnitudes are kept, the first on ties (compressed-tensors keeps the top-2 of each 4, so
     * a kept weight that is 0 is stored as a value).
     */
    public static NmMatrix fromDense(float[] w, int rows, int cols, int n, int m, DType dtype) {
        if (w.length < rows * cols) throw new IllegalArgumentException(w.length + " values for [" + rows + ", " + cols + "]");
        if (cols % m != 0) throw new IllegalArgumentException("columns " + cols + " are not a multiple of M = " + m);
        int size = rows * cols;
        boolean[] keep = new boolean[size];
        float[] mag = new float[m];
        for (int g = 0; g < size; g += m) {
            int nonZero = 0;
            for (int j = 0; j < m; j++) {
                mag[j] = Math.abs(DTypeConvert.round(w[g + j], dtype));
                if (mag[j] != 0f) nonZero++;
            }
            if (nonZero > n) {
                throw new IllegalArgumentException("row " + g / cols + ", columns " + g % cols + ".." + (g % cols + m - 1)
                        + " hold " + nonZero + " non-zero values, more than " + n + ":" + m + " allows");
            }
            for (int k = 0; k < n; k++) {
                int best = -1;
                for (int j = 0; j < m; j++) if (!keep[g + j] && (best < 0 || mag[j] > mag[best])) best = j;
                keep[g + best] = true;
            }
        }
        MemorySegment mask = MemorySegment.ofArray(Bitmask.pack(keep, rows, cols));
        return new NmMatrix(Bitmask.Block.copy(Bitmask.values(w, keep, (long) size / m * n, dtype), mask), dtype, rows, cols, n, m);
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    @Override
    public DType dtype() {
        return dtype;
    }

    public int n() {
        return n;
    }

    public int m() {
        return m;
    }

    /** compressed-tensors' name for 2:4; other patterns get a name of the same shape that no other tool reads. */
    @Override
    public String format() {
        return n == 2 && m == 4 ? "sparse-24-bitmask" : "sparse-" + n + "-" + m + "-bitmask";
    }

    @Override
    public List<MemorySegment> segments() {
        return List.of(values, bitmask);
    }

    @Override
    public long bytes() {
        return values.byteSize() + bitmask.byteSize();
    }

    @Override
    public long zeros() {
        return (long) rows * cols - rows * keptPerRow + Bitmask.storedZeros(dtype, values);
    }

    @Override
    public MemorySegment values() {
        return values;
    }

    @Override
    public MemorySegment bitmask() {
        return bitmask;
    }

    @Override
    public MemorySegment block() {
        return block;
    }

    @Override
    public long maskAt() {
        return maskAt;
    }

    @Override
    public long valueIndex(int r) {
        return r * keptPerRow;
    }

    @Override
    public void decode(int r0, int nRows, int k0, int len, float[] dst, int dstOff) {
        int group = k0 - k0 % m;
        for (int i = 0; i < nRows; i++) {
            int r = r0 + i;
            long rowByte = (long) r * rowBytes;
            long pos = r * keptPerRow + (long) group / m * n;
            if (group < k0) pos += Long.bitCount(Bitmask.bits(bitmask, rowByte, group, k0 - group));
            Bitmask.decodeRow(dtype, values, pos, bitmask, rowByte, k0, len, dst, dstOff + i * len);
        }
    }
}
