package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Step;

/**
 * Packs a {@link Step} into the int arrays the kernels read from device buffers (one host-to-device copy per step,
 * laid out back to back): token ids, positions, each token's sequence, each token's KV slot, the block tables as one
 * [sequences][maxBlocksPerSeq] matrix, and the rows of the step whose head output is wanted. A decode step may be
 * padded to a graph bucket's size: padding tokens have slot -1 (kv_store skips them), position 0 and sequence 0,
 * and nothing reads their outputs.
 *
 * <p>Head rows, in output order: first each sequence's logits rows in {@link Step#logitRow} order, then one row per
 * {@link Step.Output#LAST_ARGMAX} sequence in sequence order (as the CPU runner orders them).
 */
public final class StepPacking {
    private final int maxTokens;
    private final int maxSeqs;
    private final int maxBlocksPerSeq;
    private final int blockSize;

    /** The packed arrays; one int[] so that one copy sends them. Offsets below. */
    private final int[] data;
    private int tokens;
    private int seqs;
    private int logitRows;
    private int argmaxRows;

    public StepPacking(int maxTokens, int maxSeqs, int maxBlocksPerSeq, int blockSize) {
        if (maxTokens < 1 || maxSeqs < 1 || maxBlocksPerSeq < 1 || blockSize < 1) throw new IllegalArgumentException("packing sizes");
        this.maxTokens = maxTokens;
        this.maxSeqs = maxSeqs;
        this.maxBlocksPerSeq = maxBlocksPerSeq;
        this.blockSize = blockSize;
        this.data = new int[ints()];
    }

    /** Ints of the packed layout: 4 per-token arrays, the tables, the head rows (at most one per token). */
    public int ints() {
        return 5 * maxTokens + maxSeqs * maxBlocksPerSeq;
    }

    public int idsOffset() {
        return 0;
    }

    public int positionsOffset() {
        return maxTokens;
    }

    public int tokenSeqOffset() {
        return 2 * maxTokens;
    }

    public int slotsOffset() {
        return 3 * maxTokens;
    }

    public int headRowsOffset() {
        return 4 * maxTokens;
    }

    public int tablesOffset() {
        return 5 * maxTokens;
    }

    public int maxBlocksPerSeq() {
        return maxBlocksPerSeq;
    }

    /**
     * Packs {@code step}, padded to {@code paddedTokens} tokens (= step.tokens() unless replaying a graph bucket).
     */
    public void pack(Step step, int paddedTokens) {
        int n = step.tokens();
        if (n < 1 || paddedTokens < n || paddedTokens > maxTokens) {
            throw new IllegalArgumentException("step of " + n + " tokens padded to " + paddedTokens + ", max " + maxTokens);
        }
        if (step.sequences() > maxSeqs) throw new IllegalArgumentException(step.sequences() + " sequences, max " + maxSeqs);
        tokens = paddedTokens;
        seqs = step.sequences();
        int[] ids = step.tokenIds(), pos = step.positions(), seqOf = step.tokenSeq();
        for (int t = 0; t < n; t++) {
            int s = seqOf[t], p = pos[t];
            int blockIndex = p / blockSize;
            if (blockIndex >= step.blockCount(s)) {
                throw new IllegalArgumentException("token " + t + " at position " + p + " has no block (sequence " + s + " has "
                        + step.blockCount(s) + ")");
            }
            data[t] = ids[t];
            data[maxTokens + t] = p;
            data[2 * maxTokens + t] = s;
            data[3 * maxTokens + t] = step.blockTable(s)[blockIndex] * blockSize + p % blockSize;
        }
        for (int t = n; t < paddedTokens; t++) {
            data[t] = 0;
            data[maxTokens + t] = 0;
            data[2 * maxTokens + t] = 0;
            data[3 * maxTokens + t] = -1;
        }
        for (int s = 0; s < seqs; s++) {
            int count = step.blockCount(s);
            if (count > maxBlocksPerSeq) throw new IllegalArgumentException("sequence " + s + " has " + count + " blocks, max " + maxBlocksPerSeq);
            int base = 5 * maxTokens + s * maxBlocksPerSeq;
            System.arraycopy(step.blockTable(s), 0, data, base, count);
            java.util.Arrays.fill(data, base + count, base + maxBlocksPerSeq, 0);
        }
        int row = 0;
        for (int s = 0; s < seqs; s++) {
            switch (step.output(s)) {
                case ALL_LOGITS -> {
                    for (int i = 0; i < step.seqCount(s); i++) data[4 * maxTokens + row++] = step.seqStart(s) + i;
                }
                case LAST_LOGITS -> data[4 * maxTokens + row++] = step.lastToken(s);
                case LAST_ARGMAX -> { }
            }
        }
        logitRows = row;
        for (int s = 0; s < seqs; s++) if (step.output(s) == Step.Output.LAST_ARGMAX) data[4 * maxTokens + row++] = step.lastToken(s);
        argmaxRows = row - logitRows;
        // A padded (graph) step computes the head on every padded row too: they read token 0, nothing reads them.
        for (int r = row; r < paddedTokens; r++) data[4 * maxTokens + r] = 0;
    }

    public int[] data() {
        return data;
    }

    public int tokens() {
        return tokens;
    }

    public int sequences() {
        return seqs;
    }

    public int logitRows() {
        return logitRows;
    }

    public int argmaxRows() {
        return argmaxRows;
    }

    /** True when every sequence brings one token: a decode step, which graphs and the split-K kernels serve. */
    public static boolean isDecode(Step step) {
        return step.tokens() == step.sequences();
    }
}
