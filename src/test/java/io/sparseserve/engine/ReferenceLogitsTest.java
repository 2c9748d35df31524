package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.model.Model;
import java.nio.file.Path;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The forward pass of each family against reference.json (float64 Hugging Face numbers), without the tokenizer. */
class ReferenceLogitsTest {

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT, TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void lastLogitsOfFirstWindowMatchTop5(String fixture) {
        checkTop5(TestData.fixture(fixture), TestData.reference(fixture));
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT, TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void greedyIdsMatch(String fixture) {
        checkGreedy(TestData.fixture(fixture), TestData.reference(fixture));
    }

    static void checkTop5(Path dir, JsonNode ref) {
        int[] ids = TestData.ints(ref.path("eval").path("first_window_ids"));
        try (Model m = Model.load(dir);
             ModelRunner runner = ModelRunners.cpu().open(m, RunnerConfig.forSequence(ids.length, ids.length))) {
            int vocab = m.config().vocab();
            BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
            table.ensure(ids.length);
            Step b = new Step(ids.length, 1);
            b.add(ids, 0, ids.length, 0, table.blocks(), table.blockCount(), Step.Output.LAST_LOGITS);
            float[] logits = new float[vocab];
            runner.forward(b, logits, null);
            JsonNode top5 = ref.path("last_logits_of_first_window_top5");
            for (JsonNode pair : top5) {
                int id = pair.get(0).asInt();
                assertEquals(pair.get(1).asDouble(), logits[id], 1e-3, "logit of token " + id);
            }
            assertEquals(top5.get(0).get(0).asInt(), argmax(logits, 0, vocab), "top token");
        }
    }

    static void checkGreedy(Path dir, JsonNode ref) {
        JsonNode g = ref.path("greedy");
        int[] prompt = TestData.ints(g.path("prompt_ids"));
        int[] expected = TestData.ints(g.path("new_ids"));
        int total = prompt.length + expected.length;
        try (Model m = Model.load(dir);
             ModelRunner runner = ModelRunners.cpu().open(m, RunnerConfig.forSequence(total, total))) {
            int vocab = m.config().vocab();
            BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
            table.ensure(total);
            int[] seq = new int[total];
            System.arraycopy(prompt, 0, seq, 0, prompt.length);
            Step b = new Step(total, 1);
            float[] logits = new float[vocab];
            b.add(seq, 0, prompt.length, 0, table.blocks(), table.blockCount(), Step.Output.LAST_LOGITS);
            runner.forward(b, logits, null);
            int[] got = new int[expected.length];
            for (int i = 0; i < expected.length; i++) {
                got[i] = argmax(logits, 0, vocab);
                int pos = prompt.length + i;
                seq[pos] = got[i];
                b.clear();
                b.add(seq, pos, 1, pos, table.blocks(), table.blockCount(), Step.Output.LAST_LOGITS);
                runner.forward(b, logits, null);
            }
            assertArrayEquals(expected, got);
        }
    }

    static int argmax(float[] x, int o, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (x[o + i] > x[o + best]) best = i;
        return best;
    }
}
