package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
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
        float[] out = lanes.clone();
        VectorExp.expMinusMax(out, N, 0f);
        for (int i = 0; i < N; i++) assertEquals(Float.floatToRawIntBits(VectorExp.exp(lanes[i])), Float.floatToRawIntBits(out[i]), "lane " + i);
    }

    /** The vector loops (softmax's, SiLU's) against the scalar exp, lane by lane, over 20 000 calls: every tier. */
    @Test
    void everyLaneIsTheScalarBitsInEveryTier() {
        SplittableRandom rnd = new SplittableRandom(3);
        int n = 2 * N + 3;
        float[] x = new float[n], out = new float[n], up = new float[n];
        for (int i = 0; i < 20_000; i++) {
            for (int j = 0; j < n; j++) {
                x[j] = (float) rnd.nextDouble(-110, 95);
                up[j] = (float) rnd.nextGaussian();
            }
            float max = (float) rnd.nextDouble(-5, 5);
            System.arraycopy(x, 0, out, 0, n);
            float sum = VectorExp.expMinusMax(out, n, max);
            for (int j = 0; j < n; j++) {
                if (Float.floatToRawIntBits(out[j]) != Float.floatToRawIntBits(VectorExp.exp(x[j] - max))) {
                    throw new AssertionError("call " + i + " x = " + x[j] + ": " + out[j] + " vs scalar " + VectorExp.exp(x[j] - max));
                }
            }
            if (Float.floatToRawIntBits(sum) != Float.floatToRawIntBits(Lanes.emulate(sumOfVectors(out), 0) + out[2 * N] + out[2 * N + 1] + out[2 * N + 2])) {
                throw new AssertionError("call " + i + ": sum " + sum);
            }
            System.arraycopy(x, 0, out, 0, n);
            VectorExp.siluMul(out, up, 0, n);
            for (int j = 0; j < n; j++) {
                float g = x[j], s = g / (1f + VectorExp.exp(-g)) * up[j];
                if (Float.floatToRawIntBits(out[j]) != Float.floatToRawIntBits(s)) {
                    throw new AssertionError("call " + i + " silu(" + g + ") * " + up[j] + ": " + out[j] + " vs scalar " + s);
                }
            }
        }
    }

    /** Lane-wise sum of the two full vectors of x (the loop's vsum). */
    private static float[] sumOfVectors(float[] x) {
        float[] v = new float[N];
        for (int j = 0; j < N; j++) v[j] = (0f + x[j]) + x[N + j];
        return v;
    }
}
