package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;
import java.util.List;

/** A dense matrix over memory-mapped bytes in F32, F16 or BF16; the bytes are never copied or widened. */
public record DenseMatrix(MemorySegment data, DType dtype, int rows, int cols) implements WeightMatrix {

    public DenseMatrix {
        if (!dtype.isWeightType()) throw new IllegalArgumentException("dense matrices hold F32, F16 or BF16, not " + dtype);
        long need = (long) rows * cols * dtype.bytes();
        if (data.byteSize() != need) {
            throw new IllegalArgumentException("matrix [" + rows + ", " + cols + "] " + dtype + " needs " + need
                    + " bytes, got " + data.byteSize());
        }
    }

    /** A heap copy of a row-major float matrix, each value rounded to {@code dtype}. */
    public static DenseMatrix fromFloats(float[] w, int rows, int cols, DType dtype) {
        if (w.length != rows * cols) throw new IllegalArgumentException(w.length + " values for [" + rows + ", " + cols + "]");
        MemorySegment data = MemorySegment.ofArray(new byte[Math.multiplyExact(w.length, dtype.bytes())]);
        for (int i = 0; i < w.length; i++) DTypeConvert.setFloat(data, dtype, i, w[i]);
        return new DenseMatrix(data, dtype, rows, cols);
    }

    @Override
    public String format() {
        return "dense";
    }

    @Override
    public List<MemorySegment> segments() {
        return List.of(data);
    }

    @Override
    public long bytes() {
        return data.byteSize();
    }

    @Override
    public long zeros() {
        long zeros = 0;
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            decode(r, 1, 0, cols, row, 0);
            for (float v : row) if (v == 0f) zeros++;
        }
        return zeros;
    }

    @Override
    public void decode(int r0, int nRows, int k0, int len, float[] dst, int dstOff) {
        long esize = dtype.bytes();
        for (int i = 0; i < nRows; i++) {
            long off = ((long) (r0 + i) * cols + k0) * esize;
            Decode.toFloat(dtype, data, off, dst, dstOff + i * len, len);
        }
    }

    /** Reads one element as float (slow path for tests and tools). */
    public float get(int r, int c) {
        float[] one = new float[1];
        decode(r, 1, c, 1, one, 0);
        return one[0];
    }
}
