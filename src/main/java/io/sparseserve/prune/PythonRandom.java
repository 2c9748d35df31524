package io.sparseserve.prune;

import java.math.BigInteger;

/**
 * Python's {@code random} module, as far as calibration sampling needs it: {@code random.seed(int)} and
 * {@code random.randint(a, b)}. The SparseGPT reference picks its calibration windows with
 * {@code random.seed(seed); i = random.randint(0, n - seqlen - 1)}; drawing the same offsets lets our pruned models
 * be compared with its numbers window for window.
 *
 * <p>Mersenne Twister MT19937 (Matsumoto and Nishimura 1998) seeded with {@code init_by_array} over the 32-bit words
 * of |seed| (CPython's {@code _randommodule.c: random_seed}); {@code randint} is {@code randrange(a, b + 1)}, i.e.
 * {@code a + _randbelow(b - a + 1)}, which draws {@code getrandbits(k)} with k the bit length of the width and
 * rejects values past it ({@code Lib/random.py: _randbelow_with_getrandbits}).
 */
public final class PythonRandom {
    private static final int N = 624;
    private static final int M = 397;
    private static final int MATRIX_A = 0x9908b0df;
    private static final int UPPER = 0x80000000;
    private static final int LOWER = 0x7fffffff;

    private final int[] mt = new int[N];
    private int index;

    /** {@code random.seed(seed)} for an integer seed. */
    public PythonRandom(long seed) {
        BigInteger n = BigInteger.valueOf(seed).abs();
        int words = Math.max(1, (n.bitLength() + 31) / 32);
        int[] key = new int[words];
        for (int i = 0; i < words; i++) key[i] = n.shiftRight(32 * i).intValue();
        initByArray(key);
    }

    private void initGenrand(int s) {
        mt[0] = s;
        for (int i = 1; i < N; i++) mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
        index = N;
    }

    private void initByArray(int[] key) {
        initGenrand(19650218);
        int i = 1, j = 0;
        for (int k = Math.max(N, key.length); k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1664525)) + key[j] + j;
            i++;
            j++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if (j >= key.length) j = 0;
        }
        for (int k = N - 1; k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1566083941)) - i;
            i++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = UPPER; // MSB is 1, assuring a non-zero initial array
    }

    /** The next 32 random bits (genrand_uint32), as an unsigned value. */
    public long nextUint32() {
        if (index >= N) {
            int kk = 0;
            for (; kk < N - M; kk++) {
                int y = (mt[kk] & UPPER) | (mt[kk + 1] & LOWER);
                mt[kk] = mt[kk + M] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
            }
            for (; kk < N - 1; kk++) {
                int y = (mt[kk] & UPPER) | (mt[kk + 1] & LOWER);
                mt[kk] = mt[kk + (M - N)] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
            }
            int y = (mt[N - 1] & UPPER) | (mt[0] & LOWER);
            mt[N - 1] = mt[M - 1] ^ (y >>> 1) ^ ((y & 1) == 0 ? 0 : MATRIX_A);
            index = 0;
        }
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /** {@code random.getrandbits(k)} for 0 <= k <= 32. */
    public long getrandbits(int k) {
        if (k < 0 || k > 32) throw new IllegalArgumentException("k must be in [0, 32], got " + k);
        return k == 0 ? 0 : nextUint32() >>> (32 - k);
    }

    /** {@code random.randint(a, b)}: uniform in [a, b], both included; b - a must fit 32 bits. */
    public long randint(long a, long b) {
        if (b < a) throw new IllegalArgumentException("empty range for randint(" + a + ", " + b + ")");
        long n = b - a + 1;
        if (n > 0xffffffffL) throw new IllegalArgumentException("range wider than 32 bits: " + n);
        int k = 64 - Long.numberOfLeadingZeros(n);
        long r = getrandbits(k);
        while (r >= n) r = getrandbits(k);
        return a + r;
    }
}
