package io.sparseserve.engine;

import java.util.List;

/**
 * Finds stop strings in streamed text, across token boundaries, without ever emitting any part of a stop string;
 * the text ends where the first stop string to complete begins.
 * Text that could still become the start of a stop string is held back until the next piece decides it: after each
 * piece, the longest suffix of the unemitted text that is a proper prefix of some stop string stays here. Any
 * occurrence of a stop string therefore lies in the unemitted text when it completes (its start was held back).
 * The work per piece is bounded by the stop strings' length, not by the text so far.
 */
final class StopMatcher {
    private final String[] stops;
    private final StringBuilder held = new StringBuilder();
    private boolean matched;

    StopMatcher(List<String> stops) {
        this.stops = stops.toArray(String[]::new);
    }

    boolean matched() {
        return matched;
    }

    /**
     * Adds a piece of text and returns the text that can be emitted now. With {@code allowMatch} false (before
     * min_new_tokens) stop strings are not looked for and everything is emitted.
     */
    String add(String piece, boolean allowMatch) {
        if (matched) return "";
        if (stops.length == 0) return piece;
        held.append(piece);
        if (!allowMatch) return take(held.length());
        // The stop string that completes first in the stream wins (on a tie, the one that starts first).
        int first = -1;
        int firstEnd = Integer.MAX_VALUE;
        for (String s : stops) {
            int at = held.indexOf(s);
            if (at < 0) continue;
            int end = at + s.length();
            if (end < firstEnd || (end == firstEnd && at < first)) {
                first = at;
                firstEnd = end;
            }
        }
        if (first >= 0) {
            matched = true;
            String out = held.substring(0, first);
            held.setLength(0);
            return out;
        }
        return take(held.length() - heldBackLength());
    }

    /** The text still held back (the stream ended without completing a stop string). */
    String flush() {
        return matched ? "" : take(held.length());
    }

    /** Length of the longest suffix of {@code held} that is a proper prefix of a stop string. */
    private int heldBackLength() {
        int best = 0;
        int n = held.length();
        for (String s : stops) {
            for (int k = Math.min(n, s.length() - 1); k > best; k--) {
                if (regionMatches(n - k, s, k)) {
                    best = k;
                    break;
                }
            }
        }
        return best;
    }

    private boolean regionMatches(int from, String s, int len) {
        for (int i = 0; i < len; i++) if (held.charAt(from + i) != s.charAt(i)) return false;
        return true;
    }

    private String take(int count) {
        if (count <= 0) return "";
        String out = held.substring(0, count);
        held.delete(0, count);
        return out;
    }
}
