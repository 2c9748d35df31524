package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * An unstructured sparse matrix in compressed-tensors' {@code sparse-bitmask} layout: the kept (non-zero) values in
 * row-major order, a packed bitmask of [rows, ceil(cols / 8)] bytes, and each row's offset into the values (I64). A
 * 50% sparse BF16 matrix takes 1 + 1/8 bytes per element instead of 2. The segments are used as given (mapped from a
 * file, or built by {@link #fromDense}); the constructor checks that they agree with each other, so
 * {@link #decode} can trust them.
 */
public final class BitmaskMatrix implements MaskedMatrix {
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final MemorySegment values;
    private final MemorySegment bitmask;
    private final MemorySegment block; // values and bitmask in one segment, or null (MaskedMatrix.block)
    private final long maskAt;
    private final MemorySegment rowOffsets;
    private final DType dtype;
    private final int rows;
    private final int cols;
    private final int rowBytes;

    /**
     * @param values     kept values, {@code dtype}, row-major
     * @param bitmask    U8 [rows, ceil(cols / 8)]
     * @param rowOffsets I64 little-endian [rows]: index in {@code values} of each row's first kept value
     * @throws IllegalArgumentException when sizes, bit counts or offsets disagree
     */
    public BitmaskMatrix(MemorySegment values, MemorySegment bitmask, MemorySegment rowOffsets, DType dtype, int rows,
                         int cols) {
        this(values, bitmask, rowOffsets, dtype, rows, cols, null);
    }

    /** The values and mask of {@code block} (see {@link MaskedMatrix#block}). */
    BitmaskMatrix(Bitmask.Block block, MemorySegment rowOffsets, DType dtype, int rows, int cols) {
        this(block.values(), block.mask(), rowOffsets, dtype, rows, cols, block);
    }

    private BitmaskMatrix(MemorySegment values, MemorySegment bitmask, MemorySegment rowOffsets, DType dtype, int rows,
                          int cols, Bitmask.Block block) {
        if (!dtype.isWeightType()) throw new IllegalArgumentException("values must be F32, F16 or BF16, not " + dtype);
        if (rows <= 0 || cols <= 0) throw new IllegalArgumentException("shape [" + rows + ", " + cols + "] must be positive");
        this.rowBytes = Bitmask.rowBytes(cols);
        if (bitmask.byteSize() != (long) rows * rowBytes) {
            throw new IllegalArgumentException("bitmask has " + bitmask.byteSize() + " bytes, shape [" + rows + ", " + cols
                    + "] needs [" + rows + ", " + rowBytes + "] = " + (long) rows * rowBytes);
        }
        if (rowOffsets.byteSize() != 8L * rows) {
            throw new IllegalArgumentException("row_offsets has " + rowOffsets.byteSize() / 8 + " entries, expected " + rows);
        }
        Bitmask.checkPadding(bitmask, rows, cols);
        long kept = 0;
        for (int r = 0; r < rows; r++) {
            long off = rowOffsets.get(I64_LE, 8L * r);
            if (off != kept) {
                throw new IllegalArgumentException("row_offsets[" + r + "] = " + off + " but the bitmask puts row " + r
                        + " at value " + kept);
            }
            kept += Bitmask.countBefore(bitmask, (long) r * rowBytes, cols);
        }
        if (values.byteSize() != kept * dtype.bytes()) {
            throw new IllegalArgumentException("the bitmask keeps " + kept + " values but there are "
                    + values.byteSize() / dtype.bytes() + " " + dtype + " values");
        }
        this.values = values;
        this.bitmask = bitmask;
        this.block = block == null ? null : block.seg();
        this.maskAt = block == null ? 0 : block.maskAt();
        this.rowOffsets = rowOffsets;
        this.dtype = dtype;
        this.rows = rows;
        this.cols = cols;
    }

    /**
     * Compresses a row-major float matrix (the first rows · cols elements of {@code w}): its non-zero elements after
     * rounding to {@code dtype} are kept.
     */
    public static BitmaskMatrix fromDense(float[] w, int rows, int cols, DType dtype) {
        if (w.length < rows * cols) throw new IllegalArgumentException(w.length + " values for [" + rows + ", " + cols + "]");
        boolean[] keep = new boolean[rows * cols];
        long kept = 0;
        MemorySegment rowOffsets = MemorySegment.ofArray(new byte[8 * rows]);
        for (int r = 0; r < rows; r++) {
            rowOffsets.set(I64_LE, 8L * r, kept);
            for (int c = 0; c < cols; c++) {
                if (DTypeConvert.round(w[r * cols + c], dtype) != 0f) {
                    keep[r * cols + c] = true;
                    kept++;
                }
            }
        }
        MemorySegment mask = MemorySegment.ofArray(Bitmask.pack(keep, rows, cols));
        return new BitmaskMatrix(Bitmask.Block.copy(Bitmask.values(w, keep, kept, dtype), mask), rowOffsets, dtype, rows, cols);
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

    @Override
    public String format() {
        return "sparse-bitmask";
    }

    /** Kept values, the bitmask and the row offsets: what the layout stores. */
    @Override
    public List<MemorySegment> segments() {
        return List.of(values, bitmask, rowOffsets);
    }

    @Override
    public long bytes() {
        return values.byteSize() + bitmask.byteSize() + rowOffsets.byteSize();
    }

    /** Number of kept (stored) values. */
    public long keptCount() {
        return values.byteSize() / dtype.bytes();
    }

    @Override
    public long zeros() {
        return (long) rows * cols - keptCount() + Bitmask.storedZeros(dtype, values);
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
        return r == rows ? keptCount() : rowOffsets.get(I64_LE, 8L * r);
    }

    public MemorySegment rowOffsets() {
        return rowOffsets;
    }

    @Override
    public void decode(int r0, int nRows, int k0, int len, float[] dst, int dstOff) {
        for (int i = 0; i < nRows; i++) {
            int r = r0 + i;
            long rowByte = (long) r * rowBytes;
            long pos = rowOffsets.get(I64_LE, 8L * r) + (k0 == 0 ? 0 : Bitmask.countBefore(bitmask, rowByte, k0));
            Bitmask.decodeRow(dtype, values, pos, bitmask, rowByte, k0, len, dst, dstOff + i * len);
        }
    }
}
