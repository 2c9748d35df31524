package io.sparseserve.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * exp(x) for floats from multiply-adds and exact bit operations only, so that a lane gives the same bits in every JIT
 * tier and in the scalar version {@link #exp(float)}: {@code lanewise(EXP)} is Intel's SVML in C2 but a per-lane
 * {@code Math.exp} in the Java fallback, which differ in the last bit.
 *
 * <p>Method: Cody and Waite's range reduction, x = n ln 2 + r with n = round(x / ln 2) and |r| &lt;= ln(2)/2, r
 * computed with ln 2 split in two so that n ln 2 is subtracted almost exactly (W. J. Cody, W. Waite, <i>Software
 * Manual for the Elementary Functions</i>, 1980); e^r by a degree-7 polynomial, 1 + r + r^2 (c2 + c3 r + ... c7 r^5)
 * with the minimax coefficients of Cephes' {@code expf} (S. L. Moshier, <i>Methods and Programs for Mathematical
 * Functions</i>, 1989); then the scaling by 2^n as two exact multiplications by 2^(n/2) and 2^(n - n/2), so that n
 * from -150 to 128 needs no special case (gradual underflow to 0, overflow to infinity). Within 2 ulp of
 * {@code Math.exp} over [-87, 88] (tested); x &lt; -104 gives 0, x &gt; 89 infinity, NaN stays NaN.
 */
final class VectorExp {
    private static final float LOG2E = 1.44269504088896341f;
    // ln 2 = LN2_HI + LN2_LO; LN2_HI has 8 trailing zero bits, so n * LN2_HI is exact for |n| < 256.
    private static final float LN2_HI = 0.693359375f, LN2_LO = -2.12194440e-4f;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits (round to nearest even).
    private static final float SHIFTER = 12582912f;
    private static final int SHIFTER_BITS = Float.floatToRawIntBits(SHIFTER);
    private static final float LO = -104f, HI = 89f;
    private static final float C7 = 1.9875691500e-4f, C6 = 1.3981999507e-3f, C5 = 8.3334519073e-3f,
            C4 = 4.1665795894e-2f, C3 = 1.6666665459e-1f, C2 = 5.0000001201e-1f;

    private VectorExp() {}

    /**
     * x[0, n) = e^(x - max), returning their sum (in Lanes' order over each vector, then lane by lane for the tail):
     * softmax's numerators. A loop over arrays, so that a kernel calls it without handing it vectors.
     */
    static float expMinusMax(float[] x, int n, float max) {
        return loop(x, null, 0, n, max, false);
    }

    /** a[i] = silu(a[i]) * b[i] = a[i] / (1 + e^-a[i]) * b[i] over [i0, i1): SwiGLU's gate. */
    static void siluMul(float[] a, float[] b, int i0, int i1) {
        loop(a, b, i0, i1, 0f, true);
    }

    /**
     * The one loop of both: the vector exp is written out here, calling only the (force-inlined) Vector API, because
     * C2 refused a call to a vector exp method from such a loop at its node budget (NodeCountInliningCutoff) and
     * called it with boxed vectors. Each lane is {@link #exp(float)}'s arithmetic (VectorExpTest compares them).
     */
    private static float loop(float[] a, float[] b, int i0, int i1, float max, boolean silu) {
        FloatVector vmax = FloatVector.broadcast(Lanes.F, max), vsum = FloatVector.zero(Lanes.F);
        int bound = i0 + Lanes.F.loopBound(i1 - i0), i = i0;
        for (; i < bound; i += Lanes.N) {
            FloatVector g = FloatVector.fromArray(Lanes.F, a, i);
            FloatVector x = silu ? g.neg() : g.sub(vmax);
            x = x.blend(LO, x.compare(VectorOperators.LT, LO));
            x = x.blend(HI, x.compare(VectorOperators.GT, HI));
            FloatVector t = x.fma(LOG2E, SHIFTER);
            FloatVector nf = t.sub(SHIFTER);
            FloatVector r = nf.fma(x.broadcast(-LN2_LO), nf.fma(x.broadcast(-LN2_HI), x));
            FloatVector p = r.fma(C7, C6).fma(r, r.broadcast(C5)).fma(r, r.broadcast(C4)).fma(r, r.broadcast(C3))
                    .fma(r, r.broadcast(C2));
            p = p.mul(r.mul(r)).add(r).add(1f);
            IntVector ni = t.reinterpretAsInts().sub(SHIFTER_BITS), h = ni.lanewise(VectorOperators.ASHR, 1);
            FloatVector e = p.mul(h.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats())
                    .mul(ni.sub(h).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            if (silu) {
                g.div(e.add(1f)).mul(FloatVector.fromArray(Lanes.F, b, i)).intoArray(a, i);
            } else {
                e.intoArray(a, i);
                vsum = vsum.add(e);
            }
        }
        // Lanes.sum(vsum) written out (the same order): a call here was refused at the node budget, boxing vsum.
        FloatVector v = vsum.add(vsum.rearrange(Lanes.X1));
        v = v.add(v.rearrange(Lanes.X2));
        if (Lanes.N > 4) v = v.add(v.rearrange(Lanes.X4));
        if (Lanes.N > 8) v = v.add(v.rearrange(Lanes.X8));
        float sum = silu ? 0f : Lanes.N > 16 ? Lanes.sum(vsum) : v.lane(0);
        for (; i < i1; i++) {
            float g = a[i];
            if (silu) {
                a[i] = g / (1f + exp(-g)) * b[i];
            } else {
                float e = exp(g - max);
                a[i] = e;
                sum += e;
            }
        }
        return sum;
    }

    /** e^x with exactly the arithmetic of one lane of {@link #loop}. */
    static float exp(float x) {
        if (x < LO) x = LO;
        if (x > HI) x = HI;
        float t = Math.fma(x, LOG2E, SHIFTER);
        float n = t - SHIFTER;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = p * (r * r) + r + 1f;
        int ni = Float.floatToRawIntBits(t) - SHIFTER_BITS;
        int h = ni >> 1;
        float s1 = Float.intBitsToFloat((h + 127) << 23);
        float s2 = Float.intBitsToFloat((ni - h + 127) << 23);
        return p * s1 * s2;
    }
}
