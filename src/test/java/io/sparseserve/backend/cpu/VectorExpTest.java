package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/** VectorExp: a few ulp from Math.exp, and each lane the bits of the scalar version in every JIT tier. */
class VectorExpTest {
    private static final int N = Lanes.N;

    @Test
    void withinTwoUlpOfMathExpOverTheNormalRange() {
        int worst = 0;
        float at = 0;
        for (float x = -87f; x <= 88f; x = Math.nextUp(x + 1e-3f * Math.max(1f, Math.abs(x)))) {
            float got = VectorExp.exp(x), want = (float) Math.exp(x);
            int ulps = Math.abs(Float.floatToRawIntBits(got) - Float.floatToRawIntBits(want));
            if (ulps > worst) {
                worst = ulps;
                at = x;
            }
        }
        assertTrue(worst <= 2, "worst " + worst + " ulp at x = " + at);
    }

    @Test
    void edgesUnderflowOverflowAndNaN() {
        assertEquals(0f, VectorExp.exp(-1000f));
        assertEquals(0f, VectorExp.exp(Float.NEGATIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, VectorExp.exp(89f));
        assertEquals(Float.POSITIVE_INFINITY, VectorExp.exp(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(VectorExp.exp(Float.NaN)));
        assertEquals(1f, VectorExp.exp(0f));
        assertEquals(1f, VectorExp.exp(-0f));
        // Gradual underflow: e^-100 is a subnormal, within a few of its ulps.
        float sub = VectorExp.exp(-100f);
        assertTrue(sub > 0 && Math.abs(sub - (float) Math.exp(-100)) <= 4 * Float.MIN_VALUE, "e^-100 = " + sub);
        float[] v = {Float.NaN, Float.NEGATIVE_INFINITY, Float.POSITIVE_INFINITY, -1000f};
        float[] lanes = new float[N];
        for (int i = 0; i < N; i++) lanes[i] = v[i % 4];
        float[] out = new float[N];
        VectorExp.exp(FloatVector.fromArray(Lanes.F, lanes, 0)).intoArray(out, 0);
        for (int i = 0; i < N; i++) assertEquals(Float.floatToRawIntBits(VectorExp.exp(lanes[i])), Float.floatToRawIntBits(out[i]), "lane " + i);
    }

    @Test
    void everyLaneIsTheScalarBitsInEveryTier() {
        SplittableRandom rnd = new SplittableRandom(3);
        float[] x = new float[N], out = new float[N];
        for (int i = 0; i < 20_000; i++) {
            for (int j = 0; j < N; j++) x[j] = (float) rnd.nextDouble(-110, 95);
            VectorExp.exp(FloatVector.fromArray(Lanes.F, x, 0)).intoArray(out, 0);
            for (int j = 0; j < N; j++) {
                if (Float.floatToRawIntBits(out[j]) != Float.floatToRawIntBits(VectorExp.exp(x[j]))) {
                    throw new AssertionError("call " + i + " x = " + x[j] + ": " + out[j] + " vs scalar " + VectorExp.exp(x[j]));
                }
            }
        }
    }
}
