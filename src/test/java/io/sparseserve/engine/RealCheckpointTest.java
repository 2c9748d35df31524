package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.TestData;
import io.sparseserve.model.ChatTemplate;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Llama 3 and Qwen2 fixtures through {@link Generator} against their reference.json: prompts get the special
 * tokens of the tokenizer's post-processor, the default stop set includes generation_config.json's ids, chat
 * prompts come from the template and generate the reference ids, special tokens stay out of the text.
 */
class RealCheckpointTest {

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void greedyWithAndWithoutTheGenerationConfigStops(String fixture) {
        JsonNode ref = TestData.reference(fixture);
        Path dir = TestData.fixture(fixture);
        try (Model m = Model.load(dir); Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            Generator gen = new Generator(m, tok, ModelRunners.cpu());
            JsonNode g = ref.path("greedy");
            int[] prompt = tok.encodePrompt(g.path("prompt").asText());
            assertArrayEquals(TestData.ints(g.path("prompt_ids")), prompt);
            Generator.Result all = gen.generate(prompt, SamplingParams.greedy(), g.path("max_new_tokens").asInt(), true, null);
            assertArrayEquals(TestData.ints(g.path("new_ids")), all.tokenIds());

            JsonNode gc = ref.path("greedy_with_generation_config");
            for (int id : TestData.ints(gc.path("eos_token_ids"))) {
                assertTrue(Arrays.stream(m.config().eosTokenIds()).anyMatch(x -> x == id), "stop id " + id);
            }
            Generator.Result stopped = gen.generate(prompt, SamplingParams.greedy(), g.path("max_new_tokens").asInt(), false, null);
            assertArrayEquals(TestData.ints(gc.path("new_ids")), stopped.tokenIds());
            assertEquals(Generator.FinishReason.EOS_TOKEN, stopped.finishReason());
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void chatCasesGenerateTheReferenceIds(String fixture) {
        Path dir = TestData.fixture(fixture);
        try (Model m = Model.load(dir); Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            Generator gen = new Generator(m, tok, ModelRunners.cpu());
            ChatTemplate template = ChatTemplate.load(dir);
            for (JsonNode c : TestData.reference(fixture).path("chat")) {
                int[] prompt = tok.encode(template.render(ChatTemplate.messages(c.path("messages"), "messages"), null, true));
                assertArrayEquals(TestData.ints(c.path("prompt_ids")), prompt);
                int[] want = TestData.ints(c.path("greedy_new_ids_ignoring_eos"));
                assertArrayEquals(want, gen.generate(prompt, SamplingParams.greedy(), want.length, true, null).tokenIds());
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void specialTokensAndPaddedIdsLeaveNoText(String fixture) {
        Path dir = TestData.fixture(fixture);
        try (Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json")); Model m = Model.load(dir)) {
            int special = tok.tokenId(fixture.equals(TestData.TINY_LLAMA3) ? "<|eot_id|>" : "<|im_end|>").orElseThrow();
            assertTrue(tok.isSpecial(special));
            assertFalse(tok.isSpecial(tok.tokenId("Ġkernel").orElseThrow()));
            if (m.config().vocab() > tok.vocabSize()) assertNull(tok.token(m.config().vocab() - 1)); // padded rows
        }
    }
}
