package io.sparseserve.prune;

import io.sparseserve.model.InvalidInputException;

/** What fraction of each pruned matrix goes, and in which structure. */
public sealed interface SparsityPattern {

    /** The fraction of weights removed. */
    double sparsity();

    /** compressed-tensors' {@code sparsity_structure}: "unstructured" or "N:M". */
    String structure();

    /** Any S of the weights of a matrix, wherever they are (0 <= S < 1). */
    record Unstructured(double sparsity) implements SparsityPattern {
        public Unstructured {
            if (!(sparsity >= 0 && sparsity < 1)) {
                throw new InvalidInputException("--sparsity must be in [0, 1), got " + sparsity);
            }
        }

        @Override
        public String structure() {
            return "unstructured";
        }

        @Override
        public String toString() {
            return Double.toString(sparsity);
        }
    }

    /**
     * N of every M consecutive weights of a row are kept, M - N removed (NVIDIA's 2:4 semi-structured sparsity; the
     * SparseGPT reference's {@code --prunen 2 --prunem 4}, which for 2:4 and 4:8 removes as many as it keeps).
     */
    record NM(int n, int m) implements SparsityPattern {
        public NM {
            if (m < 2 || m > 32) throw new InvalidInputException("--pattern N:M needs M in [2, 32], got M = " + m);
            if (n < 1 || n >= m) throw new InvalidInputException("--pattern N:M needs 1 <= N < M, got " + n + ":" + m);
        }

        @Override
        public double sparsity() {
            return (double) (m - n) / m;
        }

        @Override
        public String structure() {
            return n + ":" + m;
        }

        @Override
        public String toString() {
            return structure();
        }
    }

    /** Parses "N:M" (e.g. "2:4"). */
    static NM parsePattern(String text) {
        String[] parts = text.trim().split(":");
        if (parts.length != 2) throw new InvalidInputException("--pattern must look like N:M (e.g. 2:4), got '" + text + "'");
        try {
            return new NM(Integer.parseInt(parts[0].trim()), Integer.parseInt(parts[1].trim()));
        } catch (NumberFormatException e) {
            throw new InvalidInputException("--pattern must look like N:M with integers (e.g. 2:4), got '" + text + "'");
        }
    }

    /** From the command line's --sparsity and --pattern, at most one of which is given (default: 50% unstructured). */
    static SparsityPattern of(Double sparsity, String pattern) {
        if (sparsity != null && pattern != null) throw new InvalidInputException("give --sparsity or --pattern, not both");
        if (pattern != null) return parsePattern(pattern);
        return new Unstructured(sparsity == null ? 0.5 : sparsity);
    }
}
