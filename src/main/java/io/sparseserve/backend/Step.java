package io.sparseserve.backend;

/**
 * One forward step, as the engine describes it to a {@link ModelRunner}: several sequences, each contributing a run of
 * tokens at its own positions (a prompt chunk being prefilled, or the one token of a decoding sequence), each with
 * its KV block table (plain block indices, owned by the engine) and the output it wants back.
 *
 * <p>All of it is plain ints, so a GPU runner uploads it as a few small arrays per step. Arrays are allocated once for
 * the largest step and refilled; nothing is allocated per step. Per token t in [0, tokens()): {@code tokenIds[t]},
 * {@code positions[t]} and {@code tokenSeq[t]} (the sequence it belongs to). Per sequence s in [0, sequences()): its
 * first token {@code seqStart[s]} and token count {@code seqCount[s]} (its tokens are contiguous and in position
 * order), its {@link Output} and its block table: position p of sequence s lives in KV block
 * {@code blockTable(s)[p / blockSize]}, and {@code blockCount(s)} entries of that table are valid. The table covers
 * every position up to the sequence's last token of this step; the positions before the step's first token are
 * already in the cache (written by earlier steps).
 *
 * <p>Prompt tokens: a sequence may say where its prompt ends ({@code promptEnd}): its tokens at positions before
 * that are prompt tokens, the rest generated tokens. A runner may compute prompt tokens with other arithmetic than
 * generated ones (the CPU runs prompt tokens over sparse weights on a kernel that skips the zeros' work, and
 * generated tokens on the decode kernels, whose results do not depend on the batch), as long as each kind's result
 * depends only on the token's own inputs: so a sequence's tokens are the same alone or batched, prefilled in one
 * step or in chunks, and after a preemption recomputes its generated tokens. Without a prompt end, every token
 * counts as generated.
 */
public final class Step {
    /** What a sequence wants back from a step. */
    public enum Output {
        /** The logits of its last token of the step (generation). */
        LAST_LOGITS,
        /** The logits of every one of its tokens of the step (evaluation). */
        ALL_LOGITS,
        /**
         * Only the id of the largest logit of its last token, the lowest id on ties, never NaN (greedy decoding with
         * nothing that reads the logits): a GPU then copies one int instead of a vocabulary-sized row.
         */
        LAST_ARGMAX
    }

    private final int maxTokens;
    private final int maxSeqs;
    private final int[] tokenIds;
    private final int[] positions;
    private final int[] tokenSeq;
    private final int[] seqStart;
    private final int[] seqCount;
    private final Output[] seqOutput;
    private final int[][] tables;
    private final int[] tableBlocks;
    private final int[] promptEnd;
    private int tokens;
    private int seqs;

    public Step(int maxTokens, int maxSeqs) {
        if (maxTokens < 1 || maxSeqs < 1) throw new IllegalArgumentException("a step holds at least one token and one sequence");
        this.maxTokens = maxTokens;
        this.maxSeqs = maxSeqs;
        tokenIds = new int[maxTokens];
        positions = new int[maxTokens];
        tokenSeq = new int[maxTokens];
        seqStart = new int[maxSeqs];
        seqCount = new int[maxSeqs];
        seqOutput = new Output[maxSeqs];
        tables = new int[maxSeqs][];
        tableBlocks = new int[maxSeqs];
        promptEnd = new int[maxSeqs];
    }

    public void clear() {
        tokens = 0;
        seqs = 0;
    }

    /**
     * Adds ids[from, from + count) of a sequence at positions startPos.., whose keys and values go to the KV blocks
     * {@code blockTable[0, blocks)} (position p in block {@code blockTable[p / blockSize]}; the table is referenced,
     * not copied, and must cover startPos + count positions: the caller checks that against its block size).
     */
    public void add(int[] ids, int from, int count, int startPos, int[] blockTable, int blocks, Output output) {
        add(ids, from, count, startPos, blockTable, blocks, output, 0);
    }

    /**
     * {@link #add(int[], int, int, int, int[], int, Output)} for a sequence whose positions before promptEnd are its
     * prompt (see the class comment; {@code Integer.MAX_VALUE}: every token of the step is a prompt token).
     */
    public void add(int[] ids, int from, int count, int startPos, int[] blockTable, int blocks, Output output,
                    int promptEnd) {
        if (count <= 0) throw new IllegalArgumentException("a sequence adds at least one token");
        if (tokens + count > maxTokens || seqs == maxSeqs) {
            throw new IllegalStateException("step full: " + tokens + "+" + count + " tokens, " + seqs + " sequences");
        }
        if (blocks < 0 || blocks > blockTable.length) throw new IllegalArgumentException("block count " + blocks + " outside the table");
        seqStart[seqs] = tokens;
        seqCount[seqs] = count;
        seqOutput[seqs] = output;
        this.promptEnd[seqs] = promptEnd;
        tables[seqs] = blockTable;
        tableBlocks[seqs] = blocks;
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

    /** Token ids, [0, tokens()) valid. */
    public int[] tokenIds() {
        return tokenIds;
    }

    /** Position of each token in its sequence, [0, tokens()) valid. */
    public int[] positions() {
        return positions;
    }

    /** Sequence index of each token, [0, tokens()) valid. */
    public int[] tokenSeq() {
        return tokenSeq;
    }

    /** Block tables by sequence, [0, sequences()) valid (each {@link #blockCount} entries long in use). */
    public int[][] blockTables() {
        return tables;
    }

    public int[] blockTable(int s) {
        return tables[s];
    }

    public int blockCount(int s) {
        return tableBlocks[s];
    }

    public int seqStart(int s) {
        return seqStart[s];
    }

    public int seqCount(int s) {
        return seqCount[s];
    }

    public Output output(int s) {
        return seqOutput[s];
    }

    /**
     * Checks the step against a runner's limits and KV blocks: every sequence's table covers its last position and
     * names blocks in [0, kvBlocks). A runner calls it before running (on a GPU a bad index would be an illegal
     * address, which loses the context). Allocates nothing.
     */
    public void check(int maxTokens, int maxSequences, int blockSize, int kvBlocks) {
        if (tokens > maxTokens || seqs > maxSequences) {
            throw new IllegalArgumentException("step of " + tokens + " tokens and " + seqs + " sequences exceeds the runner's "
                    + maxTokens + " tokens and " + maxSequences + " sequences");
        }
        for (int s = 0; s < seqs; s++) {
            int last = positions[lastToken(s)];
            if (last / blockSize >= tableBlocks[s]) {
                throw new IllegalArgumentException("sequence " + s + ": its " + tableBlocks[s] + " blocks do not cover position " + last);
            }
            int[] table = tables[s];
            for (int i = 0; i < tableBlocks[s]; i++) {
                if (table[i] < 0 || table[i] >= kvBlocks) {
                    throw new IllegalArgumentException("sequence " + s + ": block " + table[i] + " outside [0, " + kvBlocks + ")");
                }
            }
        }
    }

    /** Writes the indices of the step's prompt tokens, in order, into rows; returns how many. Allocates nothing. */
    public int promptRows(int[] rows) {
        int n = 0;
        for (int t = 0; t < tokens; t++) {
            if (positions[t] < promptEnd[tokenSeq[t]]) rows[n++] = t;
        }
        return n;
    }

    /** The step's last token of sequence s. */
    public int lastToken(int s) {
        return seqStart[s] + seqCount[s] - 1;
    }

    /**
     * Rows of logits the step returns: per sequence in order, {@code seqCount} rows for {@link Output#ALL_LOGITS},
     * one for {@link Output#LAST_LOGITS}, none for {@link Output#LAST_ARGMAX}.
     */
    public int logitRows() {
        int rows = 0;
        for (int s = 0; s < seqs; s++) rows += rows(s);
        return rows;
    }

    /** The first logits row of sequence s (meaningful when it returns logits). */
    public int logitRow(int s) {
        int rows = 0;
        for (int i = 0; i < s; i++) rows += rows(i);
        return rows;
    }

    /** Logits rows of sequence s. */
    public int rows(int s) {
        return switch (seqOutput[s]) {
            case ALL_LOGITS -> seqCount[s];
            case LAST_LOGITS -> 1;
            case LAST_ARGMAX -> 0;
        };
    }
}
