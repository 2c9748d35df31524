package io.sparseserve.prune;

import java.util.HashMap;
import java.util.Map;

/**
 * Large scratch arrays reused from one linear, and one layer, to the next. Pruning a 110M model otherwise makes
 * hundreds of MB of short-lived arrays per layer, most too large for the young generation, and the old generation
 * then grows towards the heap limit before a full collection: resident memory follows the garbage, not the live data.
 * An array from a slot may be longer than asked for; callers use the size they asked for, never {@code length}.
 * Not thread-safe: one pruning run, one thread asking.
 */
final class Workspace {
    private final Map<String, double[]> doubles = new HashMap<>();
    private final Map<String, float[]> floats = new HashMap<>();
    private final Map<String, boolean[]> booleans = new HashMap<>();

    /** At least {@code size} doubles, contents undefined. */
    double[] doubles(String slot, int size) {
        double[] a = doubles.get(slot);
        if (a == null || a.length < size) doubles.put(slot, a = new double[size]);
        return a;
    }

    /** At least {@code size} floats, contents undefined. */
    float[] floats(String slot, int size) {
        float[] a = floats.get(slot);
        if (a == null || a.length < size) floats.put(slot, a = new float[size]);
        return a;
    }

    /** At least {@code size} booleans, contents undefined. */
    boolean[] booleans(String slot, int size) {
        boolean[] a = booleans.get(slot);
        if (a == null || a.length < size) booleans.put(slot, a = new boolean[size]);
        return a;
    }
}
