package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.MemoryUse;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import java.util.Arrays;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The CPU runner behind the step boundary: outputs per sequence, its KV sizing, its memory and its checks. */
class CpuModelRunnerTest {

    /** Per sequence: tokens already in the cache (history) and tokens of the step. */
    private static final int[][] SPEC = {{0, 5}, {9, 1}, {3, 4}, {20, 1}};

    @Test
    void argmaxRowsAreTheArgmaxOfTheLogitsAndLeaveTheOtherRowsUnchanged() {
        try (Model m = Model.load(TestData.bundledModel())) {
            int vocab = m.config().vocab();
            SplittableRandom rnd = new SplittableRandom(11);
            int[][] ids = new int[SPEC.length][];
            for (int s = 0; s < SPEC.length; s++) ids[s] = rnd.ints(SPEC[s][0] + SPEC[s][1], 0, vocab).toArray();
            Step.Output[] allLogits = new Step.Output[SPEC.length];
            Arrays.fill(allLogits, Step.Output.LAST_LOGITS);
            Step.Output[] mixed = {Step.Output.LAST_ARGMAX, Step.Output.LAST_LOGITS, Step.Output.LAST_ARGMAX, Step.Output.ALL_LOGITS};

            int[] argmax = new int[SPEC.length];
            float[] reference = run(m, ids, allLogits, new int[SPEC.length]);
            float[] got = run(m, ids, mixed, argmax);
            // Logits rows: sequence 1's last, then sequence 3's one token (ALL_LOGITS of a one-token step). Bit for
            // bit, though the two runs are at different JIT tiers: the kernels' arithmetic is the same in every tier.
            for (int i = 0; i < vocab; i++) {
                assertEquals(Float.floatToRawIntBits(reference[vocab + i]), Float.floatToRawIntBits(got[i]), "sequence 1 logit " + i);
                assertEquals(Float.floatToRawIntBits(reference[3 * vocab + i]), Float.floatToRawIntBits(got[vocab + i]),
                        "sequence 3 logit " + i);
            }
            assertTrue(Float.isNaN(got[2 * vocab]), "no rows past the logits rows are written");
            // The argmax is the reference's largest logit (or one within the same 1e-5 of it).
            for (int s : new int[] {0, 2}) {
                float top = reference[s * vocab + argmaxOf(reference, s * vocab, vocab)];
                assertEquals(top, reference[s * vocab + argmax[s]], 1e-5, "sequence " + s + " chose " + argmax[s]);
            }
        }
    }

    private static float[] run(Model m, int[][] ids, Step.Output[] outputs, int[] argmax) {
        int vocab = m.config().vocab();
        try (ModelRunner r = ModelRunners.cpu().open(m, RunnerConfig.forSequences(64, SPEC.length, 32))) {
            Step step = new Step(64, SPEC.length);
            float[] logits = new float[SPEC.length * vocab];
            int[][] tables = new int[SPEC.length][];
            for (int s = 0; s < SPEC.length; s++) {
                tables[s] = new int[] {2 * s, 2 * s + 1}; // two blocks of 16 each, disjoint
                if (SPEC[s][0] > 0) {
                    step.clear();
                    step.add(ids[s], 0, SPEC[s][0], 0, tables[s], 2, Step.Output.LAST_LOGITS);
                    r.forward(step, logits, null);
                }
            }
            step.clear();
            for (int s = 0; s < SPEC.length; s++) step.add(ids[s], SPEC[s][0], SPEC[s][1], SPEC[s][0], tables[s], 2, outputs[s]);
            Arrays.fill(logits, Float.NaN);
            r.forward(step, logits, argmax);
            return logits;
        }
    }

    private static int argmaxOf(float[] x, int o, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (x[o + i] > x[o + best]) best = i;
        return best;
    }

    @Test
    void kvCapacityAndMemoryByKind() {
        try (Model m = Model.load(TestData.bundledModel())) {
            long perBlock = KvSizing.bytesPerBlock(m.config(), 16, KvDtype.F32);
            try (ModelRunner r = ModelRunners.cpu().open(m, new RunnerConfig(32, 4, 16, new KvCapacity.Bytes(10 * perBlock + 5)))) {
                assertEquals(10, r.kvBlocks());
                assertEquals(perBlock, r.kvBlockBytes());
                assertEquals("cpu", r.device());
                MemoryUse mem = r.memory();
                assertEquals(m.weightBytes(), mem.weights());
                assertEquals(10 * perBlock, mem.kv());
                assertTrue(mem.workspace() > 0, "activation buffers");
                assertTrue(mem.total() > mem.used(), "machine memory " + mem.total());
            }
            try (ModelRunner r = ModelRunners.cpu().open(m, new RunnerConfig(32, 4, 16, new KvCapacity.Auto(4, 128)))) {
                assertEquals(4 * 8, r.kvBlocks(), "four full-length sequences fit in any heap of this model");
            }
        }
    }

    @Test
    void aStepBeyondTheRunnersLimitsOrBlocksIsRefusedBeforeRunning() {
        try (Model m = Model.load(TestData.bundledModel());
             ModelRunner r = ModelRunners.cpu().open(m, new RunnerConfig(8, 2, 16, new KvCapacity.Blocks(4)))) {
            float[] logits = new float[2 * m.config().vocab()];
            Step big = new Step(16, 2);
            big.add(new int[16], 0, 9, 0, new int[] {0}, 1, Step.Output.LAST_LOGITS);
            assertThrows(IllegalArgumentException.class, () -> r.forward(big, logits, null), "9 tokens > 8");
            Step outside = new Step(8, 2);
            outside.add(new int[] {1}, 0, 1, 0, new int[] {4}, 1, Step.Output.LAST_LOGITS);
            assertThrows(IllegalArgumentException.class, () -> r.forward(outside, logits, null), "block 4 of 4");
            Step uncovered = new Step(8, 2);
            uncovered.add(new int[] {1}, 0, 1, 16, new int[] {0, 1}, 1, Step.Output.LAST_LOGITS);
            assertThrows(IllegalArgumentException.class, () -> r.forward(uncovered, logits, null), "position 16 in one block");
        }
    }
}
