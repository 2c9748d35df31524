package io.sparseserve.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Widening of stored values to float32, vectorized. BF16 is the top half of an IEEE float, so widening is a
 * 16-bit shift; F16 widens with the exponent rebias trick (multiply by 2^112 after placing the bits), which is
 * exact for normals, subnormals and zeros, with infinities and NaNs patched by a mask.
 */
public final class Decode {
    private Decode() {}

    public static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    public static final ValueLayout.OfShort I16_LE = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    /** Scalar fallback for every kernel, for machines or debugging without the Vector API's fast paths. */
    public static final boolean SCALAR = Boolean.getBoolean("sparseserve.scalar");

    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final FloatVector F16_SCALE = FloatVector.broadcast(F, 0x1p112f);

    public static void toFloat(DType dtype, MemorySegment src, long byteOff, float[] dst, int dstOff, int n) {
        switch (dtype) {
            case F32 -> MemorySegment.copy(src, F32_LE, byteOff, dst, dstOff, n);
            case BF16 -> bf16(src, byteOff, dst, dstOff, n);
            case F16 -> f16(src, byteOff, dst, dstOff, n);
            default -> throw new IllegalArgumentException("cannot widen " + dtype + " to float");
        }
    }

    private static void bf16(MemorySegment src, long off, float[] dst, int dOff, int n) {
        int i = 0;
        if (!SCALAR) {
            int bound = F.loopBound(n);
            for (; i < bound; i += F.length()) {
                ShortVector s = ShortVector.fromMemorySegment(S, src, off + 2L * i, ByteOrder.LITTLE_ENDIAN);
                IntVector w = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
                w.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats().intoArray(dst, dOff + i);
            }
        }
        for (; i < n; i++) dst[dOff + i] = DTypeConvert.bf16ToFloat(src.get(I16_LE, off + 2L * i));
    }

    private static void f16(MemorySegment src, long off, float[] dst, int dOff, int n) {
        int i = 0;
        if (!SCALAR) {
            int bound = F.loopBound(n);
            for (; i < bound; i += F.length()) {
                ShortVector s = ShortVector.fromMemorySegment(S, src, off + 2L * i, ByteOrder.LITTLE_ENDIAN);
                IntVector h = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
                IntVector mag = h.and(0x7fff);
                IntVector sign = h.and(0x8000).lanewise(VectorOperators.LSHL, 16);
                FloatVector v = mag.lanewise(VectorOperators.LSHL, 13).reinterpretAsFloats().mul(F16_SCALE);
                IntVector bits = v.reinterpretAsInts();
                // exponent 31 (inf / NaN): force the float exponent to all ones, keep the mantissa.
                var special = mag.compare(VectorOperators.GE, 0x7c00);
                bits = bits.blend(mag.lanewise(VectorOperators.LSHL, 13).or(0x7f800000), special);
                bits.or(sign).reinterpretAsFloats().intoArray(dst, dOff + i);
            }
        }
        for (; i < n; i++) dst[dOff + i] = Float.float16ToFloat(src.get(I16_LE, off + 2L * i));
    }
}
