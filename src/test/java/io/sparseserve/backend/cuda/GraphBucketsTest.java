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
}
