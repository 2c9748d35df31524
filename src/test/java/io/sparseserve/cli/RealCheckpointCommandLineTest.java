package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Llama 3 and Qwen2 fixtures through the command line ({@code eval}, {@code generate --prompt},
 * {@code generate --messages}) against reference.json, and the one-line refusals of what cannot be served: a
 * malformed template, an unknown rope type, a sliding window narrower than the context served.
 */
class RealCheckpointCommandLineTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void evalAndGenerateReproduceTheReference(String fixture) throws IOException {
        JsonNode ref = TestData.reference(fixture);
        String dir = TestData.fixture(fixture).toString();
        JsonNode eval = ok("eval", "--model", dir, "--text", TestData.testText60k().toString(), "--seq-len",
                ref.path("eval").path("seq_len").asText(), "--max-windows", ref.path("eval").path("windows").asText(), "--json");
        double want = ref.path("eval").path("perplexity").asDouble();
        assertEquals(want, eval.path("perplexity").asDouble(), 1e-4 * want);

        JsonNode g = ref.path("greedy");
        JsonNode all = ok("generate", "--model", dir, "--prompt", g.path("prompt").asText(), "--max-new-tokens",
                g.path("max_new_tokens").asText(), "--ignore-eos", "--json");
        assertArrayEquals(TestData.ints(g.path("prompt_ids")), TestData.ints(all.path("prompt_token_ids")));
        assertArrayEquals(TestData.ints(g.path("new_ids")), TestData.ints(all.path("token_ids")));
        JsonNode stopped = ok("generate", "--model", dir, "--prompt", g.path("prompt").asText(), "--max-new-tokens",
                g.path("max_new_tokens").asText(), "--json");
        assertArrayEquals(TestData.ints(ref.path("greedy_with_generation_config").path("new_ids")),
                TestData.ints(stopped.path("token_ids")));
        assertEquals("eos_token", stopped.path("finish_reason").asText());

        for (JsonNode c : ref.path("chat")) {
            Path messages = Files.writeString(tmp.resolve("messages.json"), c.path("messages").toString());
            int[] want8 = TestData.ints(c.path("greedy_new_ids_ignoring_eos"));
            JsonNode chat = ok("generate", "--model", dir, "--messages", messages.toString(), "--max-new-tokens",
                    String.valueOf(want8.length), "--ignore-eos", "--json");
            assertArrayEquals(TestData.ints(c.path("prompt_ids")), TestData.ints(chat.path("prompt_token_ids")));
            assertArrayEquals(want8, TestData.ints(chat.path("token_ids")));
        }
    }

    @Test
    void templateErrorsAreOneLine() throws IOException {
        JsonNode err = TestData.reference(TestData.TINY_LLAMA3).path("chat_template_error");
        Path messages = Files.writeString(tmp.resolve("m.json"), err.path("messages").toString());
        refused("error: " + err.path("error").asText(), "generate", "--model",
                TestData.fixture(TestData.TINY_LLAMA3).toString(), "--messages", messages.toString());
        Path broken = copy(TestData.TINY_LLAMA3, "broken-template", null,
                tc -> tc.put("chat_template", "{% for m in messages %}{{ m.content }}"));
        CliRunner r = refused(null, "generate", "--model", broken.toString(), "--messages", messages.toString());
        assertTrue(r.err().startsWith("error: chat template error (line 1): "), r.err());
    }

    @Test
    void unknownRopeTypesAreRefused() throws IOException {
        Path dir = copy(TestData.TINY_LLAMA3, "yarn", c -> ((ObjectNode) c.get("rope_scaling")).put("rope_type", "yarn"), null);
        CliRunner r = refused(null, "generate", "--model", dir.toString(), "--prompt", "x");
        assertTrue(r.err().contains("rope type 'yarn'"), r.err());
    }

    @Test
    void slidingWindowsNarrowerThanTheContextAreRefused() throws IOException {
        Path mistral = copy(TestData.TINY_LLAMA3, "mistral", c -> c.put("model_type", "mistral").put("sliding_window", 16), null);
        CliRunner r = refused(null, "generate", "--model", mistral.toString(), "--prompt", "x");
        assertTrue(r.err().contains("sliding_window 16"), r.err());
        // Within the window it is plain attention: the same ids as the Llama fixture it was copied from.
        JsonNode ok = ok("generate", "--model", mistral.toString(), "--max-model-len", "16", "--prompt", "The kernel provides",
                "--max-new-tokens", "4", "--ignore-eos", "--json");
        int[] want = TestData.ints(TestData.reference(TestData.TINY_LLAMA3).path("greedy").path("new_ids"));
        assertArrayEquals(java.util.Arrays.copyOf(want, 4), TestData.ints(ok.path("token_ids")));

        Path qwen = copy(TestData.TINY_QWEN2, "qwen-window", c -> c.put("use_sliding_window", true).put("sliding_window", 32), null);
        assertTrue(refused(null, "eval", "--model", qwen.toString(), "--text", TestData.testText60k().toString())
                .err().contains("sliding_window 32"));
        refused("error: --max-model-len must be in [1, 1024] (the model's max_position_embeddings), got 4096", "generate",
                "--model", TestData.fixture(TestData.TINY_QWEN2).toString(), "--max-model-len", "4096", "--prompt", "x");
    }

    private static JsonNode ok(String... args) throws IOException {
        CliRunner r = CliRunner.run(args);
        assertEquals(0, r.exitCode(), r.err());
        return JSON.readTree(r.out());
    }

    private static CliRunner refused(String message, String... args) {
        CliRunner r = CliRunner.run(args);
        assertEquals(2, r.exitCode(), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertFalse(r.err().contains("Exception"), r.err());
        if (message != null) assertEquals(message, r.err().strip());
        return r;
    }

    /** The fixture copied with its config.json and tokenizer_config.json edited. */
    private Path copy(String fixture, String name, Consumer<ObjectNode> config, Consumer<ObjectNode> tokenizerConfig) throws IOException {
        Path from = TestData.fixture(fixture);
        Path to = Files.createDirectories(tmp.resolve(name));
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) Files.copy(f, to.resolve(f.getFileName()));
        }
        edit(to.resolve("config.json"), config);
        edit(to.resolve("tokenizer_config.json"), tokenizerConfig);
        return to;
    }

    private static void edit(Path file, Consumer<ObjectNode> change) throws IOException {
        if (change == null) return;
        ObjectNode root = (ObjectNode) JSON.readTree(file.toFile());
        change.accept(root);
        Files.writeString(file, root.toString());
    }
}
