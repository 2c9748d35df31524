package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.sparseserve.backend.Step;
import org.junit.jupiter.api.Test;

/** CUDA-graph buckets and the packing of a decode step into a graph's fixed inputs, checked without a GPU. */
class GraphBucketsTest {

    @Test
    void bucketsAreOneTwoFourThenMultiplesOfEightUpToTheLargestStep() {
        assertArrayEquals(new int[] {1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64}, GraphBuckets.upTo(64).sizes());
        assertArrayEquals(new int[] {1, 2, 4, 8, 12}, GraphBuckets.upTo(12).sizes(), "the largest step has its own graph");
        assertArrayEquals(new int[] {1, 2, 3}, GraphBuckets.upTo(3).sizes());
        assertArrayEquals(new int[] {1}, GraphBuckets.upTo(1).sizes());
        assertEquals(512, GraphBuckets.upTo(4096).largest());
        assertEquals(3 + 64, GraphBuckets.upTo(4096).sizes().length);
    }

    @Test
    void aStepReplaysTheSmallestBucketThatHoldsIt() {
        GraphBuckets b = GraphBuckets.upTo(64);
        int[][] cases = {{1, 1}, {2, 2}, {3, 4}, {4, 4}, {5, 8}, {8, 8}, {9, 16}, {17, 24}, {63, 64}, {64, 64}, {65, -1}};
        for (int[] c : cases) assertEquals(c[1], b.bucketFor(c[0]), "rows " + c[0]);
        // Padding stays below 8 rows past the first buckets.
        for (int rows = 8; rows <= 64; rows++) assertEquals(true, b.bucketFor(rows) - rows < 8, "rows " + rows);
        assertThrows(IllegalArgumentException.class, () -> b.bucketFor(0));
    }

    @Test
    void onlyPureDecodeStepsReplayAGraph() {
        GraphBuckets b = GraphBuckets.upTo(16);
        int[] table = {5, 9, 2};
        Step step = new Step(32, 8);
        for (int s = 0; s < 3; s++) step.add(new int[] {40 + s}, 0, 1, 20 + s, table, 2, Step.Output.LAST_LOGITS);
        assertEquals(4, b.bucketFor(step));
        step.add(new int[] {1, 2, 3}, 0, 3, 0, table, 1, Step.Output.LAST_ARGMAX);
        assertEquals(-1, b.bucketFor(step), "a prompt chunk runs without a graph");
    }

    @Test
    void packingFillsTheRealRowsAndPointsThePaddingAtThePadBlock() {
        int pad = 99, maxBlocks = 4, blockSize = 16;
        DecodeGraphInputs in = new DecodeGraphInputs(8, maxBlocks, pad);
        Step step = new Step(8, 8);
        step.add(new int[] {7}, 0, 1, 0, new int[] {3}, 1, Step.Output.LAST_LOGITS);            // first position
        step.add(new int[] {8}, 0, 1, 16, new int[] {1, 4, 0}, 2, Step.Output.LAST_ARGMAX);     // first of block 2
        step.add(new int[] {9}, 0, 1, 63, new int[] {10, 11, 12, 13}, 4, Step.Output.LAST_LOGITS); // last of 4 blocks
        in.pack(step, 4, blockSize);
        assertEquals(3, in.rows());
        assertEquals(4, in.bucket());
        assertArrayEquals(new int[] {7, 8, 9, 0}, java.util.Arrays.copyOf(in.tokenIds, 4));
        assertArrayEquals(new int[] {0, 16, 63, 0}, java.util.Arrays.copyOf(in.positions, 4));
        assertArrayEquals(new int[] {1, 17, 64, 1}, java.util.Arrays.copyOf(in.contextLengths, 4));
        assertArrayEquals(new int[] {3, pad, pad, pad, 1, 4, pad, pad, 10, 11, 12, 13, pad, pad, pad, pad},
                java.util.Arrays.copyOf(in.blockTables, 16));
    }

    @Test
    void packingRefusesWhatAGraphCannotHold() {
        DecodeGraphInputs in = new DecodeGraphInputs(4, 2, 0);
        Step longSeq = new Step(4, 4);
        longSeq.add(new int[] {1}, 0, 1, 40, new int[] {1, 2, 3}, 3, Step.Output.LAST_LOGITS);
        assertThrows(IllegalArgumentException.class, () -> in.pack(longSeq, 1, 16), "3 blocks in a graph of 2");
        Step prefill = new Step(4, 4);
        prefill.add(new int[] {1, 2}, 0, 2, 0, new int[] {1}, 1, Step.Output.LAST_LOGITS);
        assertThrows(IllegalArgumentException.class, () -> in.pack(prefill, 1, 16));
        Step three = new Step(4, 4);
        for (int s = 0; s < 3; s++) three.add(new int[] {1}, 0, 1, 0, new int[] {s}, 1, Step.Output.LAST_LOGITS);
        assertThrows(IllegalArgumentException.class, () -> in.pack(three, 2, 16), "bucket smaller than the step");
    }
}
