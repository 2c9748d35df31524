package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A {@code sparse-bitmask} matrix re-laid for the {@code spmv_bitmask_*} and {@code expand_bitmask_*} kernels
 * (native/KERNELS.md, "Unstructured bitmask, tiled"): each row cut into 64-column tiles with a 64-bit bitmap each
 * ({@code bits}, little-endian, bit i of word r·tilesPerRow + j = column 64j + i), the stored kept values unchanged and
 * the stored row offsets unchanged as {@code rowStart}. Only the bitmap moves: compressed-tensors' packed row of
 * ceil(cols/8) bytes is copied to byte r·tilesPerRow·8 and zero-padded, so that every tile is one aligned 64-bit word.
 *
 * @param bits     U64 [rows · tilesPerRow], as little-endian bytes
 * @param values   the kept values, {@code dtype}, row-major (the matrix's own segment)
 * @param rowStart I64 [rows], index in values of each row's first kept value (the matrix's own row_offsets)
 */
public record BitmaskTiles(int rows, int cols, DType dtype, byte[] bits, MemorySegment values, MemorySegment rowStart) {

    /** ss::tiles_per_row. */
    public static int tilesPerRow(int cols) {
        return (cols + 63) / 64;
    }

    /** ss::tile_value_slot: index, within its tile's kept values, of column c (0..63) of a tile with bitmap b. */
    public static int tileValueSlot(long b, int c) {
        return c == 0 ? 0 : Long.bitCount(b & (-1L >>> (64 - c)));
    }

    public static BitmaskTiles of(BitmaskMatrix m) {
        int rows = m.rows(), cols = m.cols();
        int rowBytes = (cols + 7) / 8, tileRowBytes = tilesPerRow(cols) * 8;
        byte[] bits = new byte[Math.multiplyExact(rows, tileRowBytes)];
        MemorySegment mask = m.bitmask();
        for (int r = 0; r < rows; r++) {
            MemorySegment.copy(mask, ValueLayout.JAVA_BYTE, (long) r * rowBytes, bits, r * tileRowBytes, rowBytes);
        }
        return new BitmaskTiles(rows, cols, m.dtype(), bits, m.values(), m.rowOffsets());
    }

    public int tilesPerRow() {
        return tilesPerRow(cols);
    }

    /** Tile j of row r's bitmap. */
    public long tile(int r, int j) {
        return MemorySegment.ofArray(bits).get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN),
                ((long) r * tilesPerRow() + j) * 8);
    }

    /** Device bytes: bitmaps, values and row starts. */
    public long bytes() {
        return bits.length + values.byteSize() + rowStart.byteSize();
    }
}
