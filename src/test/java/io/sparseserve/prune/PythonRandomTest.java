package io.sparseserve.prune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** Against values printed by CPython 3.11 ({@code random.seed(s); [random.randint(a, b) for _ in ...]}). */
class PythonRandomTest {

    private static long[] draws(long seed, long a, long b, int n) {
        PythonRandom r = new PythonRandom(seed);
        long[] out = new long[n];
        for (int i = 0; i < n; i++) out[i] = r.randint(a, b);
        return out;
    }

    @Test
    void randintMatchesCPython() {
        assertArrayEquals(new long[] {885440, 403958, 794772, 933488, 441001}, draws(0, 0, 1_000_000, 5));
        assertArrayEquals(new long[] {221360, 100989, 198693, 233372, 110250}, draws(0, 0, 252_000 - 129, 5));
        assertArrayEquals(new long[] {17611, 8271, 33432}, draws(1, 0, 70_000, 3));
        // A seed wider than 32 bits is split into words; small widths reject draws past the range.
        assertArrayEquals(new long[] {4, 0, 0, 2, 1, 2}, draws((1L << 40) + 5, 0, 7, 6));
    }

    @Test
    void getrandbitsMatchesCPython() {
        assertEquals(107551873L, new PythonRandom(12345678901234L).getrandbits(32));
    }

    @Test
    void negativeSeedsAreTheirAbsoluteValue() {
        assertArrayEquals(draws(7, 0, 99, 4), draws(-7, 0, 99, 4));
    }
}
