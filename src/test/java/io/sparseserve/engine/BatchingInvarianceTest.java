package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * A sequence's logits do not depend on what it is batched with: the same step run alone and in one batch with other
 * sequences at other positions (prefills, a continued prefill, decodes) agree within 1e-5.
 */
class BatchingInvarianceTest {

    @org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp;

    @Test
    void logitsAloneEqualLogitsBatchedWithSequencesAtOtherPositions() {
        // Sparse weights too: the bundled model pruned to 50% (compressed file) and to 2:4 (a dense file with zeros,
        // compressed at load by --compress auto).
        java.nio.file.Path sparse = tmp.resolve("sparse"), nm = tmp.resolve("nm");
        prune(sparse, "--sparsity", "0.5", "--format", "sparse");
        prune(nm, "--pattern", "2:4", "--format", "dense");
        for (var dir : new java.nio.file.Path[] {TestData.bundledModel(), TestData.fixture(TestData.TINY_OPT), sparse, nm}) {
            try (Model m = Model.load(dir)) {
                if (dir == nm) assertEquals("sparse-24-bitmask", m.weights().layers().get(0).q().weight().format());
                if (dir == sparse) assertEquals("sparse-bitmask", m.weights().layers().get(0).q().weight().format());
                check(m);
            }
        }
    }

    /**
     * Prompt tokens may run on other arithmetic than generated ones (Step's prompt end; over sparse weights, the prompt
     * kernel): a sequence recomputed in one step from its prompt and the tokens it generated (as after a preemption)
     * gets the logits it got decoding them one at a time, bit for bit; and so does a prompt prefilled in chunks.
     */
    @Test
    void recomputedGeneratedTokensGiveTheDecodedLogits() {
        java.nio.file.Path sparse = tmp.resolve("recompute");
        prune(sparse, "--sparsity", "0.6", "--format", "sparse");
        try (Model m = Model.load(sparse)) {
            int vocab = m.config().vocab(), prompt = 13, generated = 6, total = prompt + generated;
            int[] ids = new SplittableRandom(9).ints(total, 0, vocab).toArray();
            float[] decoded = steps(m, ids, prompt, new int[] {prompt, 1, 1, 1, 1, 1, 1});
            float[] recomputed = steps(m, ids, prompt, new int[] {total});
            float[] chunked = steps(m, ids, prompt, new int[] {5, 8, 1, 1, 1, 1, 1, 1});
            for (int i = 0; i < vocab; i++) {
                assertEquals(Float.floatToRawIntBits(decoded[i]), Float.floatToRawIntBits(recomputed[i]), "recomputed, logit " + i);
                assertEquals(Float.floatToRawIntBits(decoded[i]), Float.floatToRawIntBits(chunked[i]), "chunked, logit " + i);
            }
        }
    }

    /** One sequence run in steps of the given token counts, its prompt ending at promptEnd; the last step's logits. */
    private static float[] steps(Model m, int[] ids, int promptEnd, int[] counts) {
        int[][] spec = {{0, ids.length}};
        try (ModelRunner runner = ModelRunners.cpu().open(m, config(spec))) {
            KvBlockAllocator blocks = new KvBlockAllocator(runner.kvBlocks());
            BlockTable table = new BlockTable(blocks, runner.blockSize());
            table.ensure(ids.length);
            Step b = new Step(ids.length, 1);
            float[] logits = new float[m.config().vocab()];
            int pos = 0;
            for (int count : counts) {
                b.clear();
                b.add(ids, pos, count, pos, table.blocks(), table.blockCount(), Step.Output.LAST_LOGITS, promptEnd);
                runner.forward(b, logits, null);
                pos += count;
            }
            return logits;
        }
    }

    static void prune(java.nio.file.Path out, String... args) {
        var err = new java.io.StringWriter();
        String[] all = java.util.stream.Stream.concat(java.util.stream.Stream.of("prune", "--model",
                TestData.bundledModel().toString(), "--out", out.toString(), "--method", "magnitude"),
                java.util.Arrays.stream(args)).toArray(String[]::new);
        int code = io.sparseserve.cli.Main.run(new java.io.PrintWriter(new java.io.StringWriter(), true),
                new java.io.PrintWriter(err, true), all);
        assertEquals(0, code, err.toString());
    }

    private static void check(Model m) {
        int vocab = m.config().vocab();
        SplittableRandom rnd = new SplittableRandom(5);
        // Per sequence: tokens already in its cache (history), then the tokens of this step.
        int[][] spec = {{0, 17}, {30, 1}, {10, 16}, {55, 1}, {0, 1}, {3, 9}};
        int[][] ids = new int[spec.length][];
        for (int s = 0; s < spec.length; s++) ids[s] = rnd.ints(spec[s][0] + spec[s][1], 0, vocab).toArray();

        float[][] alone = new float[spec.length][];
        for (int s = 0; s < spec.length; s++) alone[s] = run(m, new int[][] {spec[s]}, new int[][] {ids[s]})[0];
        float[][] together = run(m, spec, ids);
        for (int s = 0; s < spec.length; s++) {
            for (int i = 0; i < vocab; i++) {
                assertEquals(alone[s][i], together[s][i], 1e-5, m.dir() + " sequence " + s + " logit " + i);
            }
        }
    }

    /** Fills each sequence's history with its own prefill, then runs all the sequences' steps as one batch. */
    private static float[][] run(Model m, int[][] spec, int[][] ids) {
        try (ModelRunner runner = ModelRunners.cpu().open(m, config(spec))) {
            return run(runner, m, spec, ids);
        }
    }

    /** A runner config for the sequences of spec ({history, step tokens} each) at once. */
    static RunnerConfig config(int[][] spec) {
        int total = 0, maxLen = 0;
        for (int[] s : spec) {
            total += s[0] + s[1];
            maxLen = Math.max(maxLen, s[0] + s[1]);
        }
        return RunnerConfig.forSequences(total, spec.length, maxLen);
    }

    /** {@link #run(Model, int[][], int[][])} on an open runner (sized by {@link #config}); each sequence's last logits. */
    static float[][] run(ModelRunner runner, Model m, int[][] spec, int[][] ids) {
        int vocab = m.config().vocab();
        int total = 0;
        for (int[] s : spec) total += s[0] + s[1];
        KvBlockAllocator blocks = new KvBlockAllocator(runner.kvBlocks());
        Step b = new Step(total, spec.length);
        float[] logits = new float[spec.length * vocab];
        BlockTable[] tables = new BlockTable[spec.length];
        for (int s = 0; s < spec.length; s++) {
            tables[s] = new BlockTable(blocks, runner.blockSize());
            tables[s].ensure(spec[s][0] + spec[s][1]);
            if (spec[s][0] > 0) {
                b.clear();
                b.add(ids[s], 0, spec[s][0], 0, tables[s].blocks(), tables[s].blockCount(), Step.Output.LAST_LOGITS);
                runner.forward(b, logits, null);
            }
        }
        b.clear();
        for (int s = 0; s < spec.length; s++) {
            b.add(ids[s], spec[s][0], spec[s][1], spec[s][0], tables[s].blocks(), tables[s].blockCount(), Step.Output.LAST_LOGITS);
        }
        runner.forward(b, logits, null);
        float[][] out = new float[spec.length][];
        for (int s = 0; s < spec.length; s++) out[s] = java.util.Arrays.copyOfRange(logits, b.logitRow(s) * vocab, (b.logitRow(s) + 1) * vocab);
        return out;
    }
}
