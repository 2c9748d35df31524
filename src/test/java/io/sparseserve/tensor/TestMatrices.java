package io.sparseserve.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

/** Random matrices stored in a given dtype, with the exact float values they hold, for kernel tests. */
public final class TestMatrices {
    private TestMatrices() {}

    public record Stored(DenseMatrix matrix, float[] values) {}

    public static Stored random(DType dtype, int rows, int cols, long seed, Arena arena) {
        SplittableRandom rnd = new SplittableRandom(seed);
        long n = (long) rows * cols;
        MemorySegment seg = arena.allocate(n * dtype.bytes(), 8);
        float[] values = new float[(int) n];
        for (int i = 0; i < n; i++) {
            float v = (float) rnd.nextGaussian();
            DTypeConvert.setFloat(seg, dtype, i, v);
            values[i] = DTypeConvert.getFloat(seg, dtype, i);
        }
        return new Stored(new DenseMatrix(seg, dtype, rows, cols), values);
    }

    /** The given values stored in dtype (rounded), row-major [rows, cols]. */
    public static Stored of(DType dtype, float[] given, int rows, int cols, Arena arena) {
        MemorySegment seg = arena.allocate((long) rows * cols * dtype.bytes(), 8);
        float[] values = new float[rows * cols];
        for (int i = 0; i < values.length; i++) {
            DTypeConvert.setFloat(seg, dtype, i, given[i]);
            values[i] = DTypeConvert.getFloat(seg, dtype, i);
        }
        return new Stored(new DenseMatrix(seg, dtype, rows, cols), values);
    }

    public static float[] randomVector(int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) rnd.nextGaussian();
        return v;
    }
}
