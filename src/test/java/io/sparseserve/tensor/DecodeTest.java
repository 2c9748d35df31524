package io.sparseserve.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** The vectorized widening of BF16 and F16 against the scalar definitions, on every kind of value. */
class DecodeTest {

    @Test
    void bf16AndF16WideningMatchScalarOnAllBitPatternsAndOffsets() {
        try (Arena arena = Arena.ofConfined()) {
            int n = 65536 + 37; // every 16-bit pattern (normals, subnormals, zeros, infinities, NaNs) plus a tail
            MemorySegment seg = arena.allocate(2L * n + 2);
            for (int i = 0; i < n; i++) seg.set(Decode.I16_LE, 2L + 2L * i, (short) i);
            for (DType dt : new DType[] {DType.BF16, DType.F16}) {
                float[] got = new float[n];
                Decode.toFloat(dt, seg, 2, got, 0, n); // odd start: unaligned loads
                for (int i = 0; i < n; i++) {
                    float want = dt == DType.BF16 ? DTypeConvert.bf16ToFloat((short) i) : Float.float16ToFloat((short) i);
                    assertEquals(Float.floatToRawIntBits(want) == Float.floatToRawIntBits(got[i]) || (Float.isNaN(want) && Float.isNaN(got[i])),
                            true, dt + " bits 0x" + Integer.toHexString(i & 0xffff) + ": want " + want + " got " + got[i]);
                }
            }
        }
    }

    @Test
    void denseMatrixDecodesPanelsOfRowsAndColumns() {
        try (Arena arena = Arena.ofConfined()) {
            for (DType dt : new DType[] {DType.F32, DType.F16, DType.BF16}) {
                TestMatrices.Stored s = TestMatrices.random(dt, 13, 45, 3, arena);
                float[] panel = new float[3 * 20];
                s.matrix().decode(5, 3, 17, 20, panel, 0);
                for (int i = 0; i < 3; i++) {
                    for (int j = 0; j < 20; j++) assertEquals(s.values()[(5 + i) * 45 + 17 + j], panel[i * 20 + j], dt.name());
                }
            }
        }
    }
}
