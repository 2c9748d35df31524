package io.sparseserve.engine;

/**
 * One forward step: several sequences, each contributing a run of tokens at its own positions (a prompt chunk
 * being prefilled, or the one token of a decoding sequence). Arrays are allocated once for the largest step and
 * refilled; nothing is allocated per step.
 */
public final class Batch {
    private final int maxTokens;
    private final int maxSeqs;
    final int[] tokenIds;
    final int[] positions;
    final int[] tokenSeq;
    final int[] seqStart;
    final int[] seqCount;
    final boolean[] seqAllLogits;
    final int[][] tables;
    int tokens;
    int seqs;

    public Batch(int maxTokens, int maxSeqs) {
        this.maxTokens = maxTokens;
        this.maxSeqs = maxSeqs;
        tokenIds = new int[maxTokens];
        positions = new int[maxTokens];
        tokenSeq = new int[maxTokens];
        seqStart = new int[maxSeqs];
        seqCount = new int[maxSeqs];
        seqAllLogits = new boolean[maxSeqs];
        tables = new int[maxSeqs][];
    }

    public void clear() {
        tokens = 0;
        seqs = 0;
    }

    /**
     * Adds ids[from, from + count) of a sequence at positions startPos.., whose keys go to {@code table} (which must
     * already cover startPos + count positions). allLogits: return logits for every token (evaluation), else only
     * for the last (generation).
     */
    public void add(int[] ids, int from, int count, int startPos, BlockTable table, boolean allLogits) {
        if (count <= 0) throw new IllegalArgumentException("a sequence adds at least one token");
        if (tokens + count > maxTokens || seqs == maxSeqs) {
            throw new IllegalStateException("batch full: " + tokens + "+" + count + " tokens, " + seqs + " sequences");
        }
        if (table.capacity() < startPos + count) throw new IllegalStateException("block table does not cover the tokens");
        seqStart[seqs] = tokens;
        seqCount[seqs] = count;
        seqAllLogits[seqs] = allLogits;
        tables[seqs] = table.blocks();
        for (int i = 0; i < count; i++) {
            tokenIds[tokens + i] = ids[from + i];
            positions[tokens + i] = startPos + i;
            tokenSeq[tokens + i] = seqs;
        }
        tokens += count;
        seqs++;
    }

    public int tokens() {
        return tokens;
    }

    public int sequences() {
        return seqs;
    }

    public int maxTokens() {
        return maxTokens;
    }

    public int maxSequences() {
        return maxSeqs;
    }

    /** Rows of logits the step returns: per sequence, all its tokens or its last one, in sequence order. */
    public int logitRows() {
        int rows = 0;
        for (int s = 0; s < seqs; s++) rows += seqAllLogits[s] ? seqCount[s] : 1;
        return rows;
    }

    /** The first logits row of sequence s. */
    public int logitRow(int s) {
        int rows = 0;
        for (int i = 0; i < s; i++) rows += seqAllLogits[i] ? seqCount[i] : 1;
        return rows;
    }
}
