package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;
import java.util.Arrays;

/**
 * How many decoder layers each device of a layer split holds ({@code --layer-split a,b,...}, in the order of
 * {@code --device cuda:N,M,...}): stage i runs layers [start(i), end(i)); the first stage also holds the embeddings,
 * the last the final norm and the head. Every stage holds at least one layer. Without {@code --layer-split} the
 * split is the one {@code plan --gpus N} prints ({@code backend.cuda.StageLayout#defaultSplit}).
 */
public record LayerSplit(int[] counts) {
    public LayerSplit {
        counts = counts.clone();
        if (counts.length == 0) throw new IllegalArgumentException("no stages");
        for (int c : counts) if (c < 1) throw new IllegalArgumentException("a stage without layers: " + Arrays.toString(counts));
    }

    /** Parses {@code --layer-split}: positive layer counts separated by commas; a bad one is one line. */
    public static LayerSplit parse(String spec) {
        String s = spec == null ? "" : spec.strip();
        String[] parts = s.split(",", -1);
        int[] counts = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].strip();
            if (p.isEmpty() || p.length() > 6 || !p.chars().allMatch(Character::isDigit) || Integer.parseInt(p) < 1) {
                throw new InvalidInputException("--layer-split must be layer counts >= 1 separated by commas, one per "
                        + "device of --device (e.g. 16,16), got '" + spec + "'");
            }
            counts[i] = Integer.parseInt(p);
        }
        return new LayerSplit(counts);
    }

    /** Layers in equal parts, the first stages taking one more where they do not divide (tests, fallbacks). */
    public static LayerSplit even(int layers, int stages) {
        if (stages < 1 || layers < stages) throw new IllegalArgumentException(layers + " layers over " + stages + " stages");
        int[] c = new int[stages];
        for (int i = 0; i < stages; i++) c[i] = layers / stages + (i < layers % stages ? 1 : 0);
        return new LayerSplit(c);
    }

    /** From layer ranges [first, end) in order, e.g. a plan's stages. */
    public static LayerSplit ofRanges(int[][] ranges) {
        int[] c = new int[ranges.length];
        for (int i = 0; i < ranges.length; i++) {
            if (i > 0 && ranges[i][0] != ranges[i - 1][1]) throw new IllegalArgumentException("ranges not contiguous");
            c[i] = ranges[i][1] - ranges[i][0];
        }
        return new LayerSplit(c);
    }

    /**
     * Checks the split against the devices and the model: one count per device, summing to the model's layers.
     * Throws {@link InvalidInputException} with one line naming both.
     */
    public LayerSplit check(Device device, int layers) {
        int devices = device.isCpu() ? 0 : device.ordinals().length;
        if (counts.length != devices) {
            throw new InvalidInputException("--layer-split " + this + " has " + counts.length + " layer count"
                    + (counts.length == 1 ? "" : "s") + " for --device " + device + " (" + devices + " device"
                    + (devices == 1 ? "" : "s") + "): give one per device");
        }
        if (layers() != layers) {
            throw new InvalidInputException("--layer-split " + this + " covers " + layers() + " layers; the model has "
                    + layers + (layers < devices ? " (fewer than the " + devices + " devices)" : ""));
        }
        return this;
    }

    public int stages() {
        return counts.length;
    }

    public int count(int stage) {
        return counts[stage];
    }

    /** First layer of {@code stage}. */
    public int start(int stage) {
        int s = 0;
        for (int i = 0; i < stage; i++) s += counts[i];
        return s;
    }

    /** One past the last layer of {@code stage}. */
    public int end(int stage) {
        return start(stage) + counts[stage];
    }

    public int layers() {
        int s = 0;
        for (int c : counts) s += c;
        return s;
    }

    /** The stage holding {@code layer}. */
    public int stageOf(int layer) {
        if (layer < 0 || layer >= layers()) throw new IndexOutOfBoundsException("layer " + layer + " of " + layers());
        for (int i = 0, end = 0; i < counts.length; i++) {
            end += counts[i];
            if (layer < end) return i;
        }
        throw new AssertionError();
    }

    @Override
    public int[] counts() {
        return counts.clone();
    }

    /** The {@code --layer-split} spelling: "16,16". */
    @Override
    public String toString() {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < counts.length; i++) b.append(i == 0 ? "" : ",").append(counts[i]);
        return b.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LayerSplit l && Arrays.equals(l.counts, counts);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(counts);
    }
}
