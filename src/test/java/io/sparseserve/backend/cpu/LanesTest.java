package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * Lanes' reductions are the scalar emulation's order bit for bit, from the first (interpreted) call through C1 to C2:
 * each loop below runs 20 000 times, so the JIT compiles the loop with the reductions inlined (on-stack replacement)
 * while it runs, and every result is compared. {@link TierIndependenceTest} does the same for whole kernels in JVMs
 * held to the interpreter and to C1.
 */
class LanesTest {
    static final int N = Lanes.N;

    /** Lanes of mixed sign and magnitude (1e-8 .. 1e8): every order of adding them rounds differently. */
    static float[] lanes(SplittableRandom rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(-8, 9)));
        }
        return v;
    }

    @Test
    void sumIsTheEmulatedOrderInEveryTier() {
        SplittableRandom rnd = new SplittableRandom(1);
        int differFromSequential = 0;
        for (int i = 0; i < 20_000; i++) {
            float[] v = lanes(rnd, N);
            float got = Lanes.sum(FloatVector.fromArray(Lanes.F, v, 0)), want = Lanes.emulate(v, 0);
            if (Float.floatToRawIntBits(got) != Float.floatToRawIntBits(want)) {
                throw new AssertionError("call " + i + ": " + got + " vs emulated " + want);
            }
            float seq = 0f;
            for (float x : v) seq += x;
            if (seq != want) differFromSequential++;
        }
        // The inputs do tell orders apart (else the comparison above would prove nothing).
        assertEquals(true, differFromSequential > 1000, "only " + differFromSequential + " sums differ from sequential");
    }

    @Test
    void sum4IsFourEmulatedSumsInEveryTier() {
        SplittableRandom rnd = new SplittableRandom(2);
        for (int i = 0; i < 20_000; i++) {
            float[] v = lanes(rnd, 4 * N);
            FloatVector s = Lanes.sum4(FloatVector.fromArray(Lanes.F, v, 0), FloatVector.fromArray(Lanes.F, v, N),
                    FloatVector.fromArray(Lanes.F, v, 2 * N), FloatVector.fromArray(Lanes.F, v, 3 * N));
            for (int j = 0; j < 4; j++) {
                float want = Lanes.emulate(v, j * N);
                if (Float.floatToRawIntBits(s.lane(j)) != Float.floatToRawIntBits(want)) {
                    throw new AssertionError("call " + i + " accumulator " + j + ": " + s.lane(j) + " vs emulated " + want);
                }
                // and the same as the one-accumulator sum (batch invariance relies on it)
                float one = Lanes.sum(FloatVector.fromArray(Lanes.F, v, j * N));
                if (Float.floatToRawIntBits(one) != Float.floatToRawIntBits(want)) throw new AssertionError("sum " + i);
            }
        }
    }

    @Test
    void arraySumIsTheEmulatedOrderInEveryTier() {
        SplittableRandom rnd = new SplittableRandom(4);
        for (int i = 0; i < 20_000; i++) {
            float[] v = lanes(rnd, N + 3);
            float want = Lanes.emulate(v, 3), vector = Lanes.sum(FloatVector.fromArray(Lanes.F, v, 3));
            float got = Lanes.sum(v, 3); // may overwrite v[3, 3 + N): compare with what was computed before
            if (Float.floatToRawIntBits(got) != Float.floatToRawIntBits(want) || Float.floatToRawIntBits(vector) != Float.floatToRawIntBits(want)) {
                throw new AssertionError("call " + i + ": array " + got + ", vector " + vector + ", emulated " + want);
            }
        }
    }

    @Test
    void specialValuesPropagate() {
        float[] v = new float[N];
        v[N - 1] = Float.NaN;
        assertEquals(true, Float.isNaN(Lanes.sum(FloatVector.fromArray(Lanes.F, v, 0))));
        v[N - 1] = Float.POSITIVE_INFINITY;
        assertEquals(Float.POSITIVE_INFINITY, Lanes.sum(FloatVector.fromArray(Lanes.F, v, 0)));
    }
}
