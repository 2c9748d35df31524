package io.sparseserve.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Conversions among the three weight dtypes (F32, F16, BF16), for single values and whole tensors.
 *
 * <p>Stored tensors are little-endian (the safetensors format says so), whatever the machine's order, so every
 * access goes through the explicit little-endian unaligned layouts below: a tensor's data may start at any byte of a
 * mapped file when its header length is not a multiple of 8.
 */
public final class DTypeConvert {
    public static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private DTypeConvert() {}

    /** Exact: bf16 is the upper half of an IEEE binary32. */
    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }

    /**
     * Rounds to the nearest bf16, ties to even (what PyTorch's {@code c10::BFloat16} and TensorFlow do): adding
     * 0x7FFF plus the lowest kept bit carries into the kept half exactly when the dropped half is above 0x8000, or
     * equal to it with an odd kept half. Finite values past the largest bf16 become infinities, as IEEE rounding says.
     */
    public static short floatToBf16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if (Float.isNaN(value)) {
            // Truncating could leave a zero mantissa, i.e. an infinity; keep sign and high payload, force the quiet bit.
            return (short) ((bits >>> 16) | 0x0040);
        }
        int roundingBias = 0x7FFF + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** IEEE binary16 to binary32 (exact). */
    public static float f16ToFloat(short bits) {
        return Float.float16ToFloat(bits);
    }

    /** IEEE binary32 to binary16, round to nearest even (the JDK implements IEEE 754 rounding). */
    public static short floatToF16(float value) {
        return Float.floatToFloat16(value);
    }

    /** {@code value} rounded to the nearest value of {@code dtype} (to nearest even), as a float. */
    public static float round(float value, DType dtype) {
        return switch (dtype) {
            case F32 -> value;
            case F16 -> Float.float16ToFloat(Float.floatToFloat16(value));
            case BF16 -> bf16ToFloat(floatToBf16(value));
            default -> throw notWeightType(dtype);
        };
    }

    /** Element {@code index} of a little-endian F32, F16 or BF16 tensor, as a float. */
    public static float getFloat(MemorySegment data, DType dtype, long index) {
        return switch (dtype) {
            case F32 -> data.getAtIndex(LE_FLOAT, index);
            case F16 -> Float.float16ToFloat(data.getAtIndex(LE_SHORT, index));
            case BF16 -> bf16ToFloat(data.getAtIndex(LE_SHORT, index));
            default -> throw notWeightType(dtype);
        };
    }

    /** Stores {@code value} (rounded to nearest even for F16 and BF16) as element {@code index}. */
    public static void setFloat(MemorySegment data, DType dtype, long index, float value) {
        switch (dtype) {
            case F32 -> data.setAtIndex(LE_FLOAT, index, value);
            case F16 -> data.setAtIndex(LE_SHORT, index, Float.floatToFloat16(value));
            case BF16 -> data.setAtIndex(LE_SHORT, index, floatToBf16(value));
            default -> throw notWeightType(dtype);
        }
    }

    /**
     * Converts a whole little-endian tensor into a new segment allocated in {@code arena}. F16 and BF16 go through
     * float, which holds both exactly, so there is a single rounding. The same dtype gives a plain copy.
     */
    public static MemorySegment convert(MemorySegment src, DType from, DType to, Arena arena) {
        if (!from.isWeightType()) throw notWeightType(from);
        if (!to.isWeightType()) throw notWeightType(to);
        if (src.byteSize() % from.bytes() != 0) {
            throw new IllegalArgumentException(
                    "tensor of " + src.byteSize() + " bytes is not a whole number of " + from + " elements");
        }
        long n = src.byteSize() / from.bytes();
        MemorySegment dst = arena.allocate(n * to.bytes(), to.bytes());
        if (from == to) {
            MemorySegment.copy(src, 0, dst, 0, src.byteSize());
            return dst;
        }
        for (long i = 0; i < n; i++) {
            setFloat(dst, to, i, getFloat(src, from, i));
        }
        return dst;
    }

    private static IllegalArgumentException notWeightType(DType dtype) {
        return new IllegalArgumentException("dtype " + dtype + " is not a weight type (allowed: F32, F16, BF16)");
    }
}
