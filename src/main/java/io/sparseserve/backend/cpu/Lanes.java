package io.sparseserve.backend.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Sums of a vector's lanes in one fixed order, the same in every JIT tier. {@code reduceLanes(ADD)} adds lanes in one
 * order in C2's intrinsic and another in the Java fallback (interpreter, C1, or C2 code where vectors got boxed), so a
 * kernel's result depended on which thread ran it and how warm its code was. Lane-wise add, blend and rearrange by a
 * constant shuffle are exact in every tier, so a tree of them gives the same bits everywhere.
 *
 * <p>The order, for each accumulator of N lanes: pairwise, adjacent lanes first, p[i] = p[2i] + p[2i + 1] until one
 * is left ({@link #emulate} is the same in scalar code, for tests). Three forms, one order: {@link #sum} (one vector,
 * a rearrange and an add per level), {@link #sum4} (four accumulators reduced together, transposed: the first level
 * leaves a's pair sums in the even lanes of one vector and b's in the odd ones, a blend of each with the other's
 * lane-swapped copy and one add; the second level does that again at distance 2; the rest folds the vector onto
 * itself), and {@link #sum(float[], int)} / {@link #sums} (scalar, over accumulators a kernel has stored).
 *
 * <p>Cost, measured on AVX-512 (JDK 25, C2): 4 dot products of 256 with sum4, 38 ns against 37 with four
 * {@code reduceLanes}; 8 reductions from an array, vector sum8 41 ns, scalar 24-35 ns, reduceLanes 26 ns. C2's
 * {@code reduceLanes} uses in-register shuffles with immediate operands that the Vector API does not expose, so the
 * fixed order costs a little in kernels with many short reductions (see the README's measurements).
 */
final class Lanes {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int N = F.length();

    // XOR_k: lane i takes lane i ^ k. BIT_k: the lanes whose index has bit k set. Needs N >= 4 (128-bit vectors).
    static final VectorShuffle<Float> X1 = xor(1), X2 = xor(2), X4 = xor(4 % N), X8 = xor(8 % N);
    private static final VectorMask<Float> B1 = bit(1), B2 = bit(2);

    private Lanes() {}

    private static VectorShuffle<Float> xor(int k) {
        int[] idx = new int[N];
        for (int i = 0; i < N; i++) idx[i] = i ^ k;
        return VectorShuffle.fromArray(F, idx, 0);
    }

    private static VectorMask<Float> bit(int k) {
        boolean[] m = new boolean[N];
        for (int i = 0; i < N; i++) m[i] = (i & k) != 0;
        return VectorMask.fromArray(F, m, 0);
    }

    // Each reduction is one method whose body calls only the Vector API (whose methods are force-inlined): C2 checks
    // its node budget (NodeCountInliningCutoff) once per call of our own methods, and a kernel is large, so a
    // reduction split into helpers got its later helpers refused there, called out of line with boxed vectors. One
    // call per kernel end: sum or sum4 (or, past the budget, the array form sum(float[], int)).

    /** The sum of v's lanes in the order of {@link #emulate}. */
    static float sum(FloatVector v) {
        v = v.add(v.rearrange(X1));
        v = v.add(v.rearrange(X2));
        if (N > 4) v = v.add(v.rearrange(X4));
        if (N > 8) v = v.add(v.rearrange(X8));
        if (N > 16) v = foldWide(v);
        return v.lane(0);
    }

    /** Lanes 0, 1, 2, 3 hold the sums of a, b, c, d, each in the order of {@link #sum}. */
    static FloatVector sum4(FloatVector a, FloatVector b, FloatVector c, FloatVector d) {
        // a's adjacent pair sums in the even lanes, b's in the odd ones; the same for c and d.
        FloatVector u = a.blend(b.rearrange(X1), B1).add(a.rearrange(X1).blend(b, B1));
        FloatVector v = c.blend(d.rearrange(X1), B1).add(c.rearrange(X1).blend(d, B1));
        // Distance 2: lane i holds a, b, c or d by i mod 4.
        FloatVector x = u.blend(v.rearrange(X2), B2).add(u.rearrange(X2).blend(v, B2));
        if (N > 4) x = x.add(x.rearrange(X4));
        if (N > 8) x = x.add(x.rearrange(X8));
        if (N > 16) x = foldWide(x);
        return x;
    }

    /**
     * The sum of buf[off, off + N) in the order of {@link #sum}, in scalar code: for a kernel that has stored its
     * accumulators, as tile2x4 does. Scalar float arithmetic is exact IEEE in every tier, and C2 spends no node budget
     * on vectors here; measured as fast as reduceLanes once compiled, and far faster than boxed vectors before.
     */
    static float sum(float[] b, int o) {
        if (N != 16) return sumInPlace(b, o);
        float p0 = b[o] + b[o + 1], p1 = b[o + 2] + b[o + 3], p2 = b[o + 4] + b[o + 5], p3 = b[o + 6] + b[o + 7];
        float p4 = b[o + 8] + b[o + 9], p5 = b[o + 10] + b[o + 11], p6 = b[o + 12] + b[o + 13], p7 = b[o + 14] + b[o + 15];
        return ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));
    }

    /**
     * b[j] = the sum of b[j N, (j + 1) N) for j &lt; count, each by {@link #sum(float[], int)}; one call for all of a
     * tile's accumulators (b is scratch: its contents past b[count) are overwritten).
     */
    static void sums(float[] b, int count) {
        for (int j = 0; j < count; j++) b[j] = sum(b, j * N);
    }

    /** {@link #sum(float[], int)} for N other than 16: the same tree, computed over buf in place. */
    private static float sumInPlace(float[] b, int o) {
        for (int w = N; w > 1; w /= 2) {
            for (int i = 0; i < w / 2; i++) b[o + i] = b[o + 2 * i] + b[o + 2 * i + 1];
        }
        return b[o];
    }

    /** Species wider than 16 lanes (not on x86): the levels from distance 16 on, with shuffles made per call. */
    private static FloatVector foldWide(FloatVector v) {
        for (int k = 16; k < N; k *= 2) v = v.add(v.rearrange(xor(k)));
        return v;
    }

    /** The sum of lanes[off, off + N) in exactly the order of {@link #sum}, in scalar code (tests). */
    static float emulate(float[] lanes, int off) {
        float[] p = java.util.Arrays.copyOfRange(lanes, off, off + N);
        for (int w = N; w > 1; w /= 2) {
            for (int i = 0; i < w / 2; i++) p[i] = p[2 * i] + p[2 * i + 1];
        }
        return p[0];
    }
}
