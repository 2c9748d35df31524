package io.sparseserve.model;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class Utf8Test {
    private static byte[] bytes(int... values) {
        byte[] b = new byte[values.length];
        for (int i = 0; i < b.length; i++) b[i] = (byte) values[i];
        return b;
    }

    private static String lossy(int... values) {
        byte[] b = bytes(values);
        return Utf8.decodeLossy(b, 0, b.length);
    }

    @Test
    void validTextDecodesLikeJava() {
        String text = "naïve café — 日本語 🙂 $ ¢ € 𐍈";
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        assertEquals(text, Utf8.decodeLossy(b, 0, b.length));
    }

    /** Expected values are Rust's String::from_utf8_lossy (and Python's errors="replace", which agrees). */
    @Test
    void maximalSubpartsBecomeOneReplacementEach() {
        assertEquals("\uFFFD\uFFFDush", lossy(0xED, 0xAB, 'u', 's', 'h')); // surrogate: Java writes one U+FFFD
        assertEquals("\uFFFD\uFFFD", lossy(0xE0, 0x80)); // overlong
        assertEquals("\uFFFD\uFFFD", lossy(0xC0, 0xAF)); // C0 never occurs
        assertEquals("\uFFFD\uFFFD\uFFFD\uFFFD", lossy(0xF4, 0x90, 0x80, 0x80)); // above U+10FFFF
        assertEquals("\uFFFDA", lossy(0xE6, 0x97, 'A')); // cut character followed by ASCII
        assertEquals("\uFFFD", lossy(0xF0, 0x9F, 0x99)); // incomplete at the end: one
        assertEquals("\uFFFD\uFFFD", lossy(0x80, 0xBF)); // lone continuation bytes
        assertEquals("\uFFFD\uFFFD", lossy(0xF5, 0x80));
    }

    @Test
    void stopsBeforeAnIncompleteTailUnlessAtEndOfInput() {
        byte[] b = bytes('a', 0xF0, 0x9F, 0x99);
        StringBuilder out = new StringBuilder();
        assertEquals(1, Utf8.decode(b, 0, b.length, out, false));
        assertEquals("a", out.toString());
        byte[] invalidTail = bytes('a', 0xF0, 0x41);
        out.setLength(0);
        assertEquals(3, Utf8.decode(invalidTail, 0, 3, out, false));
        assertEquals("a\uFFFDA", out.toString());
    }

    /** Decoding in pieces, carrying the unconsumed tail over, gives the same text as decoding at once. */
    @Test
    void piecewiseDecodingEqualsWholeDecoding() {
        SplittableRandom random = new SplittableRandom(3);
        for (int trial = 0; trial < 2000; trial++) {
            byte[] b = new byte[random.nextInt(1, 40)];
            for (int i = 0; i < b.length; i++) {
                // Bias towards the interesting bytes: continuations and lead bytes.
                b[i] = (byte) (random.nextBoolean() ? random.nextInt(0x80, 0x100) : random.nextInt(0x100));
            }
            String whole = Utf8.decodeLossy(b, 0, b.length);
            StringBuilder pieces = new StringBuilder();
            int start = 0; // first byte not yet consumed
            int fed = 0;
            while (fed < b.length) {
                fed = Math.min(b.length, fed + random.nextInt(1, 5));
                start += Utf8.decode(b, start, fed - start, pieces, false);
            }
            Utf8.decode(b, start, b.length - start, pieces, true);
            assertEquals(whole, pieces.toString());
        }
    }
}
