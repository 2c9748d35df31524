package io.sparseserve.model;

import io.sparseserve.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Objects;

/**
 * One stored tensor: its dtype, shape, and a read-only slice of the mapped file holding exactly its bytes
 * (little-endian, row-major). The slice lives as long as the {@link SafetensorsFile} it came from is open.
 *
 * <p>The shape array is copied in and out so the record stays immutable; equality is the record's default (the shape
 * array by identity), as two infos are only ever the same when they are the same object.
 */
public record TensorInfo(String name, DType dtype, long[] shape, MemorySegment data, Path file) {
    public TensorInfo {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(data, "data");
        shape = shape.clone();
        checkByteSize(name, dtype, shape, data);
    }

    /** The bytes of a tensor must be exactly its element count times its element size. */
    static void checkByteSize(String name, DType dtype, long[] shape, MemorySegment data) {
        long expected = Math.multiplyExact(numel(shape), dtype.bytes());
        if (data.byteSize() != expected) {
            throw new IllegalArgumentException("tensor '" + name + "': " + data.byteSize() + " bytes, but shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + expected);
        }
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    /** Number of elements: the product of the dimensions (1 for a scalar, 0 when any dimension is 0). */
    public long numel() {
        return numel(shape);
    }

    /** Number of dimensions. */
    public int rank() {
        return shape.length;
    }

    /** Size of dimension {@code i}; throws when it does not fit an int (no tensor we compute with is that wide). */
    public int dim(int i) {
        return Math.toIntExact(shape[i]);
    }

    /** The shape as PyTorch prints it in lists, e.g. "[64, 160]". */
    public String shapeString() {
        return Arrays.toString(shape);
    }

    public long byteSize() {
        return data.byteSize();
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + shapeString() + " (" + file + ")";
    }

    /** Product of dims; throws ArithmeticException on overflow and IllegalArgumentException on a negative dim. */
    static long numel(long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(shape));
            n = Math.multiplyExact(n, d);
        }
        return n;
    }
}
