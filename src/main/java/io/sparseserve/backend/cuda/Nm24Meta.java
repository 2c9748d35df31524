package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.NmMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A 2:4 matrix ({@code sparse-24-bitmask}) re-laid for the {@code spmv_nm24_*} / {@code expand_nm24_*} kernels
 * (native/KERNELS.md, "2:4"): the stored kept values [rows][cols/2] unchanged, and per group of 4 columns a nibble
 * (bits 1:0 the first kept column, bits 3:2 the second, first &lt; second), two groups per byte, even group in the
 * low nibble. Same bytes as the stored bitmask (4 bits per 4 columns) but the kernel reads positions, not a mask.
 *
 * @param meta U8 [rows · metaRowBytes(cols)]
 */
public record Nm24Meta(int rows, int cols, DType dtype, byte[] meta, MemorySegment values) {

    /** ss::nm24_meta_row_bytes (cols is a multiple of 4). */
    public static int metaRowBytes(int cols) {
        return (cols / 4 + 1) / 2;
    }

    public static Nm24Meta of(NmMatrix m) {
        if (m.n() != 2 || m.m() != 4) {
            throw new IllegalArgumentException("the 2:4 kernels take 2:4 matrices, not " + m.n() + ":" + m.m());
        }
        int rows = m.rows(), cols = m.cols(), groups = cols / 4;
        int maskRowBytes = (cols + 7) / 8, metaRowBytes = metaRowBytes(cols);
        byte[] meta = new byte[Math.multiplyExact(rows, metaRowBytes)];
        MemorySegment mask = m.bitmask();
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < groups; g++) {
                // Group g's 4 mask bits: byte g/2 of the row, low nibble for even g (little bit order).
                int bits4 = (mask.get(ValueLayout.JAVA_BYTE, (long) r * maskRowBytes + g / 2) >> ((g & 1) * 4)) & 15;
                int first = Integer.numberOfTrailingZeros(bits4);
                int second = Integer.numberOfTrailingZeros(bits4 & ~(1 << first));
                int nibble = first | second << 2;
                meta[r * metaRowBytes + g / 2] |= (byte) (nibble << ((g & 1) * 4));
            }
        }
        return new Nm24Meta(rows, cols, m.dtype(), meta, m.values());
    }

    /** ss::nm24_nibble: group g of row r. */
    public int nibble(int r, int g) {
        int b = meta[r * metaRowBytes(cols) + g / 2] & 0xff;
        return (g & 1) != 0 ? b >> 4 : b & 15;
    }

    public long bytes() {
        return meta.length + values.byteSize();
    }
}
