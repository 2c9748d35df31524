package io.sparseserve.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Scalar and whole-tensor dtype conversions against bit-level references, on random values. */
class DTypeConvertTest {
    private static final int N = 200_000;

    /** bf16 round to nearest even, spelled out: drop the low half, round up above the halfway point or on a tie to odd. */
    private static short referenceBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        int upper = bits >>> 16;
        int lower = bits & 0xFFFF;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1)) upper++;
        return (short) upper;
    }

    @Test
    void bf16ToFloatIsTheUpperHalfOfTheFloatBits() {
        for (int b = 0; b < 0x10000; b++) {
            float f = DTypeConvert.bf16ToFloat((short) b);
            assertEquals(b << 16, Float.floatToRawIntBits(f), () -> "bits " + Integer.toHexString(f2i(f)));
        }
    }

    @Test
    void floatToBf16MatchesBitLevelRoundToNearestEvenOnRandomFloats() {
        Random r = new Random(1);
        for (int i = 0; i < N; i++) {
            // Half random bit patterns (all exponents, subnormals, infinities), half typical weight values.
            float f = (i & 1) == 0 ? Float.intBitsToFloat(r.nextInt()) : (float) (r.nextGaussian() * 0.05);
            if (Float.isNaN(f)) continue;
            assertEquals(referenceBf16(f), DTypeConvert.floatToBf16(f), "for " + f);
        }
    }

    @Test
    void floatToBf16BreaksTiesToEven() {
        Random r = new Random(2);
        for (int i = 0; i < 10_000; i++) {
            int upper = r.nextInt(0x7F80); // finite positive values
            float tie = Float.intBitsToFloat(upper << 16 | 0x8000);
            int expected = (upper & 1) == 0 ? upper : upper + 1;
            assertEquals((short) expected, DTypeConvert.floatToBf16(tie));
            assertEquals((short) (expected | 0x8000), DTypeConvert.floatToBf16(-tie), "sign is kept");
        }
        assertEquals((short) 0x3F80, DTypeConvert.floatToBf16(Float.intBitsToFloat(0x3F808000))); // 1 + 2^-8 -> 1
        assertEquals((short) 0x3F82, DTypeConvert.floatToBf16(Float.intBitsToFloat(0x3F818000)));
        assertEquals((short) 0x7F80, DTypeConvert.floatToBf16(Float.MAX_VALUE), "past the largest bf16 is +inf");
        assertEquals((short) 0xFF80, DTypeConvert.floatToBf16(Float.NEGATIVE_INFINITY));
        assertEquals((short) 0x8000, DTypeConvert.floatToBf16(-0.0f));
    }

    @Test
    void floatToBf16KeepsNaNsNaN() {
        // 0x7F800001 has its payload only in the dropped half: plain truncation would turn it into +inf.
        for (int bits : new int[] {0x7FC00000, 0x7F800001, 0xFF800001, 0x7FFFFFFF, 0xFFC00000}) {
            short b = DTypeConvert.floatToBf16(Float.intBitsToFloat(bits));
            assertTrue(Float.isNaN(DTypeConvert.bf16ToFloat(b)), Integer.toHexString(bits));
            assertEquals(bits >>> 31, (b & 0xFFFF) >>> 15, "sign of " + Integer.toHexString(bits));
        }
    }

    @Test
    void f16ConversionsAgreeWithTheJdk() {
        for (int h = 0; h < 0x10000; h++) {
            float f = DTypeConvert.f16ToFloat((short) h);
            assertEquals(Float.floatToRawIntBits(Float.float16ToFloat((short) h)), Float.floatToRawIntBits(f));
            if (!Float.isNaN(f)) assertEquals((short) h, DTypeConvert.floatToF16(f), "f16 -> f32 -> f16 is exact");
        }
        Random r = new Random(3);
        for (int i = 0; i < N; i++) {
            float f = (i & 1) == 0 ? Float.intBitsToFloat(r.nextInt()) : (float) (r.nextGaussian() * 0.05);
            assertEquals(Float.floatToFloat16(f), DTypeConvert.floatToF16(f));
        }
    }

    @Test
    void convertsWholeTensorsLikeTheScalarFunctions() {
        int n = 1001;
        Random r = new Random(4);
        try (Arena arena = Arena.ofConfined()) {
            // Source at an odd address: mapped tensors may start anywhere.
            MemorySegment f32 = arena.allocate(n * 4L + 1).asSlice(1);
            for (int i = 0; i < n; i++) f32.setAtIndex(DTypeConvert.LE_FLOAT, i, (float) (r.nextGaussian() * 3));

            MemorySegment bf16 = DTypeConvert.convert(f32, DType.F32, DType.BF16, arena);
            MemorySegment f16 = DTypeConvert.convert(f32, DType.F32, DType.F16, arena);
            MemorySegment bf16ToF32 = DTypeConvert.convert(bf16, DType.BF16, DType.F32, arena);
            MemorySegment f16ToF32 = DTypeConvert.convert(f16, DType.F16, DType.F32, arena);
            MemorySegment f16ToBf16 = DTypeConvert.convert(f16, DType.F16, DType.BF16, arena);
            MemorySegment bf16ToF16 = DTypeConvert.convert(bf16, DType.BF16, DType.F16, arena);
            MemorySegment copy = DTypeConvert.convert(f32, DType.F32, DType.F32, arena);
            assertEquals(n * 2L, bf16.byteSize());
            assertEquals(n * 4L, bf16ToF32.byteSize());
            assertEquals(-1, copy.mismatch(f32));

            for (int i = 0; i < n; i++) {
                float x = f32.getAtIndex(DTypeConvert.LE_FLOAT, i);
                short b = bf16.getAtIndex(DTypeConvert.LE_SHORT, i);
                short h = f16.getAtIndex(DTypeConvert.LE_SHORT, i);
                assertEquals(referenceBf16(x), b);
                assertEquals(Float.floatToFloat16(x), h);
                assertEquals(DTypeConvert.bf16ToFloat(b), bf16ToF32.getAtIndex(DTypeConvert.LE_FLOAT, i));
                assertEquals(Float.float16ToFloat(h), f16ToF32.getAtIndex(DTypeConvert.LE_FLOAT, i));
                assertEquals(referenceBf16(Float.float16ToFloat(h)), f16ToBf16.getAtIndex(DTypeConvert.LE_SHORT, i));
                assertEquals(Float.floatToFloat16(DTypeConvert.bf16ToFloat(b)),
                        bf16ToF16.getAtIndex(DTypeConvert.LE_SHORT, i));
            }
        }
    }

    @Test
    void convertRejectsNonWeightDtypesAndPartialElements() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment src = arena.allocate(6);
            assertThrows(IllegalArgumentException.class, () -> DTypeConvert.convert(src, DType.I32, DType.F32, arena));
            assertThrows(IllegalArgumentException.class, () -> DTypeConvert.convert(src, DType.F16, DType.U8, arena));
            assertThrows(IllegalArgumentException.class, () -> DTypeConvert.convert(src, DType.F32, DType.F16, arena));
        }
    }

    private static int f2i(float f) {
        return Float.floatToRawIntBits(f);
    }
}
