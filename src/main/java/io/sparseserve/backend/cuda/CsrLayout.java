package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.MaskedMatrix;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A bitmask or N:M matrix as CSR for cuSPARSE (32-bit indices): row pointers from the row offsets, column indices
 * from the mask bits, the stored kept values unchanged (they are already row-major in column order, which is CSR's
 * value order). At 50% BF16 this is 2 + 4 bytes per kept value, 1.5x dense: the {@code cusparse} path exists to be
 * measured, and {@code auto} frees it when it loses.
 */
public record CsrLayout(int rows, int cols, DType dtype, int[] rowPtr, int[] colInd, MemorySegment values) {

    public static CsrLayout of(MaskedMatrix m) {
        int rows = m.rows(), cols = m.cols();
        long nnz = m.valueIndex(rows);
        if (nnz > Integer.MAX_VALUE) throw new IllegalArgumentException(nnz + " kept values exceed CSR's 32-bit indices");
        int[] rowPtr = new int[rows + 1];
        int[] colInd = new int[(int) nnz];
        int rowBytes = m.maskRowBytes();
        MemorySegment mask = m.bitmask();
        int k = 0;
        for (int r = 0; r < rows; r++) {
            rowPtr[r] = k;
            if (k != m.valueIndex(r)) throw new IllegalStateException("row " + r + " starts at " + m.valueIndex(r) + ", mask says " + k);
            for (int b = 0; b < rowBytes; b++) {
                int bits = mask.get(ValueLayout.JAVA_BYTE, (long) r * rowBytes + b) & 0xff;
                while (bits != 0) {
                    colInd[k++] = b * 8 + Integer.numberOfTrailingZeros(bits);
                    bits &= bits - 1;
                }
            }
        }
        rowPtr[rows] = k;
        return new CsrLayout(rows, cols, m.dtype(), rowPtr, colInd, m.values());
    }

    public int nnz() {
        return colInd.length;
    }

    public long bytes() {
        return 4L * rowPtr.length + 4L * colInd.length + values.byteSize();
    }
}
