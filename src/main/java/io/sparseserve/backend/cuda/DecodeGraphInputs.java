package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Step;
import java.util.Arrays;

/**
 * The host side of a captured decode graph's inputs: fixed-size int arrays that a decode step is packed into and
 * copied to the graph's device buffers before each replay (the graph reads fixed addresses, so the step's contents
 * move, not its buffers). Row r of a bucket of B rows is sequence r of the step; rows past the step's sequences are
 * padding: token 0 at position 0, a context of one position, and a block table that names only the runner's
 * reserved padding block, so that their keys and values land where no sequence reads and their outputs are dropped.
 *
 * <p>Block tables are flattened to {@code [bucket][maxBlocksPerSequence]} (a paged-attention kernel indexes
 * {@code tables[row * maxBlocks + position / blockSize]}); unused entries repeat the padding block, never garbage.
 * Refilled per step: nothing is allocated.
 */
public final class DecodeGraphInputs {
    private final int maxRows;
    private final int maxBlocks;
    private final int padBlock;
    /** Per row: the token id, its position and its context length (position + 1). */
    public final int[] tokenIds;
    public final int[] positions;
    public final int[] contextLengths;
    /** Flattened block tables, {@code [maxRows][maxBlocks]}. */
    public final int[] blockTables;
    private int rows;
    private int bucket;

    /**
     * @param maxRows the largest bucket
     * @param maxBlocksPerSequence blocks of the longest sequence (context length / block size, rounded up)
     * @param padBlock the block the runner reserves for padding rows (never handed to the engine)
     */
    public DecodeGraphInputs(int maxRows, int maxBlocksPerSequence, int padBlock) {
        if (maxRows < 1 || maxBlocksPerSequence < 1 || padBlock < 0) throw new IllegalArgumentException("graph input sizes");
        this.maxRows = maxRows;
        this.maxBlocks = maxBlocksPerSequence;
        this.padBlock = padBlock;
        tokenIds = new int[maxRows];
        positions = new int[maxRows];
        contextLengths = new int[maxRows];
        blockTables = new int[maxRows * maxBlocksPerSequence];
    }

    /**
     * Packs a pure decode step ({@link GraphBuckets#isDecode}) into the first {@code bucket} rows, padding the rest.
     * Throws when the step is not a decode step, has more rows than the bucket, or a sequence's table is longer
     * than {@code maxBlocksPerSequence}.
     */
    public void pack(Step step, int bucket, int blockSize) {
        if (!GraphBuckets.isDecode(step)) throw new IllegalArgumentException("only a pure decode step replays a graph");
        int n = step.sequences();
        if (bucket < n || bucket > maxRows) throw new IllegalArgumentException("bucket " + bucket + " for " + n + " rows (max " + maxRows + ")");
        for (int r = 0; r < n; r++) {
            int t = step.seqStart(r);
            int pos = step.positions()[t];
            int blocks = pos / blockSize + 1; // the blocks that hold positions [0, pos]
            if (blocks > maxBlocks || blocks > step.blockCount(r)) {
                throw new IllegalArgumentException("sequence " + r + " at position " + pos + " needs " + blocks
                        + " blocks; the graph holds " + maxBlocks + ", its table " + step.blockCount(r));
            }
            tokenIds[r] = step.tokenIds()[t];
            positions[r] = pos;
            contextLengths[r] = pos + 1;
            int base = r * maxBlocks;
            System.arraycopy(step.blockTable(r), 0, blockTables, base, blocks);
            Arrays.fill(blockTables, base + blocks, base + maxBlocks, padBlock);
        }
        for (int r = n; r < bucket; r++) {
            tokenIds[r] = 0;
            positions[r] = 0;
            contextLengths[r] = 1;
            Arrays.fill(blockTables, r * maxBlocks, (r + 1) * maxBlocks, padBlock);
        }
        this.rows = n;
        this.bucket = bucket;
    }

    /** Real rows of the last packed step. */
    public int rows() {
        return rows;
    }

    /** Rows the graph computes (real plus padding). */
    public int bucket() {
        return bucket;
    }

    public int maxBlocksPerSequence() {
        return maxBlocks;
    }
}
