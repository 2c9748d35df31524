package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class StopMatcherTest {

    @Test
    void holdsBackAPossiblePrefixAndDropsTheStopString() {
        StopMatcher m = new StopMatcher(List.of("\n\n", "END"));
        assertEquals("abc", m.add("abc\n", true));
        assertEquals("", m.add("\nx", true)); // "\n\n" completes: nothing of it is emitted
        assertTrue(m.matched());
        assertEquals("", m.flush());
    }

    @Test
    void releasesHeldTextWhenThePrefixBreaks() {
        StopMatcher m = new StopMatcher(List.of("END"));
        assertEquals("a", m.add("aE", true));
        assertEquals("", m.add("N", true));
        assertEquals("ENx", m.add("x", true));
        assertEquals("", m.add("E", true));
        assertEquals("E", m.flush());
        assertFalse(m.matched());
    }

    @Test
    void beforeMinTokensNothingIsMatchedOrHeld() {
        StopMatcher m = new StopMatcher(List.of("ab"));
        assertEquals("xab", m.add("xab", false));
        assertEquals("c", m.add("cab", true));
        assertTrue(m.matched());
    }

    @Test
    void randomSplitsGiveTheTextBeforeTheFirstStop() {
        SplittableRandom rnd = new SplittableRandom(7);
        String alphabet = "abc";
        for (int trial = 0; trial < 2000; trial++) {
            StringBuilder sb = new StringBuilder();
            int len = 1 + rnd.nextInt(30);
            for (int i = 0; i < len; i++) sb.append(alphabet.charAt(rnd.nextInt(3)));
            String text = sb.toString();
            List<String> stops = List.of(randomString(rnd, alphabet, 1 + rnd.nextInt(4)), randomString(rnd, alphabet, 1 + rnd.nextInt(4)));
            // Reference: the first end position at which the text so far ends with a stop string.
            int first = -1;
            for (int end = 1; end <= text.length() && first < 0; end++) {
                for (String s : stops) {
                    if (text.startsWith(s, end - s.length()) && end >= s.length()) {
                        int at = end - s.length();
                        if (first < 0 || at < first) first = at;
                    }
                }
            }
            StopMatcher m = new StopMatcher(stops);
            StringBuilder out = new StringBuilder();
            int pos = 0;
            while (pos < text.length() && !m.matched()) {
                int n = 1 + rnd.nextInt(4);
                String piece = text.substring(pos, Math.min(text.length(), pos + n));
                pos += piece.length();
                out.append(m.add(piece, true));
            }
            out.append(m.flush());
            assertEquals(first >= 0, m.matched(), text + " " + stops);
            assertEquals(first >= 0 ? text.substring(0, first) : text, out.toString(), text + " " + stops);
        }
    }

    private static String randomString(SplittableRandom rnd, String alphabet, int n) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) sb.append(alphabet.charAt(rnd.nextInt(alphabet.length())));
        return sb.toString();
    }
}
