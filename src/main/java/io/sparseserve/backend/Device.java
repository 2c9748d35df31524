package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;
import java.util.Arrays;

/**
 * Where a model runs ({@code --device}): {@code cpu}, or {@code cuda} / {@code cuda:N} / {@code cuda:N,M,...} (CUDA
 * device ordinals; {@code cuda} is {@code cuda:0}). Several ordinals split the model by layers, one stage per ordinal in
 * order ({@link LayerSplit}); an ordinal may repeat ({@code cuda:0,0}: two stages on one GPU, how a one-GPU machine
 * tests the split).
 */
public record Device(Kind kind, int[] ordinals) {
    public enum Kind { CPU, CUDA }

    public static final Device CPU = new Device(Kind.CPU, new int[0]);

    /** Ordinals are small: no machine has more GPUs than this in one node. */
    private static final int MAX_ORDINAL = 1023;

    public Device {
        ordinals = ordinals.clone();
        if (kind == Kind.CPU && ordinals.length != 0) throw new IllegalArgumentException("cpu takes no ordinals");
        if (kind == Kind.CUDA && ordinals.length == 0) throw new IllegalArgumentException("cuda needs an ordinal");
    }

    /** Parses a {@code --device} value; a bad one is one line naming the option and the accepted forms. */
    public static Device parse(String spec) {
        String s = spec == null ? "" : spec.strip();
        if (s.equals("cpu")) return CPU;
        if (s.equals("cuda")) return new Device(Kind.CUDA, new int[] {0});
        if (s.startsWith("cuda:")) {
            String[] parts = s.substring(5).split(",", -1);
            int[] ids = new int[parts.length];
            for (int i = 0; i < parts.length; i++) {
                String p = parts[i].strip();
                if (p.isEmpty() || !p.chars().allMatch(Character::isDigit) || p.length() > 4
                        || Integer.parseInt(p) > MAX_ORDINAL) {
                    throw bad(spec);
                }
                ids[i] = Integer.parseInt(p);
            }
            return new Device(Kind.CUDA, ids);
        }
        throw bad(spec);
    }

    private static InvalidInputException bad(String spec) {
        return new InvalidInputException("--device must be cpu, cuda, cuda:N or cuda:N,M,... (N a device ordinal), got '"
                + spec + "'");
    }

    public boolean isCpu() {
        return kind == Kind.CPU;
    }

    /** The ordinal of a single-GPU device (the first stage's of a split). */
    public int ordinal() {
        if (kind != Kind.CUDA) throw new IllegalStateException("cpu has no ordinal");
        return ordinals[0];
    }

    /** Whether the model is split by layers over several stages. */
    public boolean isSplit() {
        return ordinals.length > 1;
    }

    /** Stage {@code i}'s device alone, e.g. "cuda:1" of "cuda:0,1". */
    public Device stage(int i) {
        return new Device(Kind.CUDA, new int[] {ordinals[i]});
    }

    @Override
    public int[] ordinals() {
        return ordinals.clone();
    }

    /** The canonical spelling: "cpu", "cuda:0", "cuda:0,1". */
    @Override
    public String toString() {
        if (kind == Kind.CPU) return "cpu";
        StringBuilder b = new StringBuilder("cuda:");
        for (int i = 0; i < ordinals.length; i++) b.append(i == 0 ? "" : ",").append(ordinals[i]);
        return b.toString();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Device d && d.kind == kind && Arrays.equals(d.ordinals, ordinals);
    }

    @Override
    public int hashCode() {
        return kind.hashCode() * 31 + Arrays.hashCode(ordinals);
    }
}
