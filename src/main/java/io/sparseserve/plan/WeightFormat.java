package io.sparseserve.plan;

import io.sparseserve.model.InvalidInputException;

/**
 * The format a decoder layer's linear weights are served in, and the bytes a [rows, cols] matrix takes in it: what
 * {@code tensor/DenseMatrix}, {@code BitmaskMatrix} and {@code NmMatrix} hold in memory. Embeddings, the head, norms
 * and biases are always dense.
 */
public sealed interface WeightFormat {
    /** Bytes of a [rows, cols] matrix with {@code b}-byte values. */
    long bytes(long rows, long cols, int b);

    /** The name of the layout (compressed-tensors' names for the sparse ones). */
    String name();

    /** What the table prints: the layout and its sparsity. */
    String label();

    record Dense() implements WeightFormat {
        public long bytes(long rows, long cols, int b) {
            return rows * cols * b;
        }

        public String name() {
            return "dense";
        }

        public String label() {
            return "dense";
        }
    }

    /**
     * Unstructured, {@code sparse-bitmask}: the kept values, a bitmask of [rows, ceil(cols / 8)] bytes and one I64
     * offset per row (BitmaskMatrix keeps all three). Kept = rows·cols − floor(S·rows·cols).
     */
    record Bitmask(double sparsity) implements WeightFormat {
        public Bitmask {
            if (!(sparsity >= 0 && sparsity < 1)) throw new InvalidInputException("--sparsity must be in [0, 1), got " + sparsity);
        }

        public long bytes(long rows, long cols, int b) {
            long kept = rows * cols - (long) Math.floor(sparsity * rows * cols);
            return kept * b + rows * ((cols + 7) / 8) + 8 * rows;
        }

        public String name() {
            return "sparse-bitmask";
        }

        public String label() {
            return String.format(java.util.Locale.ROOT, "bitmask %.0f%%", sparsity * 100);
        }
    }

    /** N:M, {@code sparse-24-bitmask}: rows·cols·N/M values and a bitmask of [rows, ceil(cols / 8)] bytes (NmMatrix). */
    record Nm(int n, int m) implements WeightFormat {
        public Nm {
            if (n < 1 || n >= m || m > 32) throw new InvalidInputException("--pattern " + n + ":" + m + " needs 1 <= N < M <= 32");
        }

        public long bytes(long rows, long cols, int b) {
            if (cols % m != 0) {
                throw new InvalidInputException("--pattern " + n + ":" + m + ": a linear with " + cols
                        + " input columns is not a multiple of " + m);
            }
            return rows * (cols / m * n) * b + rows * ((cols + 7) / 8);
        }

        public String name() {
            return n == 2 && m == 4 ? "sparse-24-bitmask" : "sparse-" + n + m + "-bitmask";
        }

        public String label() {
            return n + ":" + m;
        }
    }

    static WeightFormat pattern(String text) {
        String[] p = text.split(":");
        try {
            if (p.length == 2) return new Nm(Integer.parseInt(p[0].trim()), Integer.parseInt(p[1].trim()));
        } catch (NumberFormatException e) {
            // falls through to the one message below
        }
        throw new InvalidInputException("--pattern must look like N:M (e.g. 2:4), got '" + text + "'");
    }
}
