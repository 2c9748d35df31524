package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code plan} against the formula the README states, computed here from each config.json on its own (not through
 * the planner's code): per-layer linears in the served format, dense norms/biases/embeddings/head, KV per token, and
 * the greedy split (every GPU full: the next piece would not fit).
 */
class PlanCommandTest {
    private static final Path CONFIGS = Path.of("src", "test", "resources", "plan");
    private static final long GIB = 1L << 30;
    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir Path tmp;

    private static JsonNode plan(String... args) throws Exception {
        CliRunner r = CliRunner.run(args);
        assertEquals(0, r.exitCode(), "stderr: " + r.err());
        return JSON.readTree(r.out());
    }

    @Test
    void opt175bNeedsFiveGpusDenseAndThreePruned() throws Exception {
        JsonNode j = plan("plan", "--model", CONFIGS.resolve("opt-175b/config.json").toString(), "--gpu-memory", "80GiB",
                "--context", "2048", "--concurrency", "1", "--json");
        assertEquals(0.9, j.get("gpu_memory_utilization").asDouble());
        assertEquals(4_718_592, j.get("kv_bytes_per_token").asLong()); // 2 · 96 layers · 12288 · 2 bytes = 4.7 MB
        JsonNode plans = j.get("plans");
        assertEquals(List.of("dense", "sparse-bitmask", "sparse-24-bitmask"),
                List.of(plans.get(0).get("format").asText(), plans.get(1).get("format").asText(), plans.get(2).get("format").asText()));
        assertEquals(5, plans.get(0).get("gpus").asInt());
        assertEquals(3, plans.get(1).get("gpus").asInt());
        assertEquals(3, plans.get(2).get("gpus").asInt());
        assertEquals(0.5625, plans.get(2).get("linear_ratio").asDouble(), 1e-12);
        assertEquals(0.5625, plans.get(1).get("linear_ratio").asDouble(), 1e-3); // + 8 bytes of row offset per row
    }

    @ParameterizedTest
    @ValueSource(strings = {"opt-175b", "opt-66b", "llama-2-70b", "llama-3.1-8b"})
    void everyRowFollowsFromTheConfig(String name) throws Exception {
        for (String gpu : new String[] {"80GiB", "40GiB"}) {
            for (int concurrency : new int[] {1, 8}) {
                JsonNode c = JSON.readTree(CONFIGS.resolve(name).resolve("config.json").toFile());
                JsonNode j = plan("plan", "--model", CONFIGS.resolve(name).toString(), "--gpu-memory", gpu, "--context", "2000",
                        "--concurrency", Integer.toString(concurrency), "--json");
                check(c, j, gpu.equals("80GiB") ? 80 * GIB : 40 * GIB, 2000, concurrency);
            }
        }
    }

    /** The README's formula, written out from the raw config. */
    private static void check(JsonNode c, JsonNode j, long gpuBytes, int context, int concurrency) {
        boolean opt = c.get("model_type").asText().equals("opt");
        long h = c.get("hidden_size").asLong(), layers = c.get("num_hidden_layers").asLong();
        long heads = c.get("num_attention_heads").asLong(), kvHeads = c.path("num_key_value_heads").asLong(heads);
        long hd = h / heads, ff = c.get(opt ? "ffn_dim" : "intermediate_size").asLong(), vocab = c.get("vocab_size").asLong();
        boolean tied = c.path("tie_word_embeddings").asBoolean(opt);
        long b = c.get("torch_dtype").asText().equals("float32") ? 4 : 2;
        // [out, in] of each linear of one layer
        long[][] linears = opt ? new long[][] {{h, h}, {h, h}, {h, h}, {h, h}, {ff, h}, {h, ff}}
                : new long[][] {{heads * hd, h}, {kvHeads * hd, h}, {kvHeads * hd, h}, {h, heads * hd}, {ff, h}, {ff, h}, {h, ff}};
        long others = opt ? 4 * h + (4 * h + ff + h) : 2 * h; // norms (+ OPT's biases)
        long embeddings = (vocab * h + (opt ? (c.get("max_position_embeddings").asLong() + 2) * h : 0)) * b;
        long head = (opt ? 2 * h : h) * b + vocab * h * b;
        long kvToken = 2 * kvHeads * hd * b;
        assertEquals(kvToken * layers, j.get("kv_bytes_per_token").asLong());
        long usable = (long) Math.floor(0.9 * gpuBytes) - 2 * GIB;
        assertEquals(usable, j.get("usable_bytes_per_gpu").asLong());
        long tokens = (context + 15) / 16 * 16;

        for (JsonNode p : j.get("plans")) {
            long linear = 0, dense = 0;
            for (long[] s : linears) {
                long rows = s[0], cols = s[1];
                dense += rows * cols * b;
                linear += switch (p.get("format").asText()) {
                    case "dense" -> rows * cols * b;
                    case "sparse-bitmask" -> rows * cols / 2 * b + rows * ((cols + 7) / 8) + 8 * rows; // 50%
                    case "sparse-24-bitmask" -> rows * cols / 2 * b + rows * ((cols + 7) / 8);
                    default -> throw new AssertionError(p.get("format").asText());
                };
            }
            String what = c.get("_name_or_path").asText() + " " + p.get("format").asText() + " on " + gpuBytes / GIB + " GiB x" + concurrency;
            assertEquals(linear, p.get("linear_bytes_per_layer").asLong(), what);
            assertEquals(dense, p.get("linear_dense_bytes_per_layer").asLong(), what);
            long layer = linear + others * b;
            assertEquals(layer, p.get("layer_bytes").asLong(), what);
            assertEquals(embeddings, p.get("embedding_bytes").asLong(), what);
            assertEquals(head, p.get("head_bytes").asLong(), what);
            assertEquals(embeddings + layers * layer + head - (tied ? vocab * h * b : 0), p.get("weight_bytes").asLong(), what);

            // The split: contiguous layers in order, embeddings first, head last, each GPU within its usable memory,
            // and greedy: no GPU could have taken the first piece of the next one.
            JsonNode stages = p.get("stages");
            assertEquals(stages.size(), p.get("gpus").asInt(), what);
            long kvLayer = kvToken * tokens * concurrency, next = 0, minSeq = Long.MAX_VALUE;
            List<long[]> used = new ArrayList<>();
            for (int g = 0; g < stages.size(); g++) {
                JsonNode s = stages.get(g);
                long from = s.get("layers").get(0).asLong(), to = s.get("layers").get(1).asLong();
                assertEquals(next, from, what + ": layers contiguous");
                next = to;
                assertEquals(g == 0, s.get("embeddings").asBoolean(), what);
                assertEquals(g == stages.size() - 1, s.get("head").asBoolean(), what);
                long headHere = g == stages.size() - 1 ? head - (tied && g == 0 ? vocab * h * b : 0) : 0;
                long w = (g == 0 ? embeddings : 0) + (to - from) * layer + headHere;
                assertEquals(w, s.get("weight_bytes").asLong(), what + " gpu " + g);
                assertEquals((to - from) * kvLayer, s.get("kv_bytes").asLong(), what);
                assertTrue(w + (to - from) * kvLayer <= usable, what + " gpu " + g + " over its usable memory");
                used.add(new long[] {w + (to - from) * kvLayer, to});
                if (to > from) minSeq = Math.min(minSeq, (usable - w) / ((to - from) * kvToken * tokens));
            }
            assertEquals(layers, next, what + ": all layers placed");
            for (int g = 0; g + 1 < used.size(); g++) {
                boolean nextIsLayer = used.get(g)[1] < layers;
                long nextPiece = nextIsLayer ? layer + kvLayer : head;
                assertTrue(used.get(g)[0] + nextPiece > usable, what + " gpu " + g + " could have held one more piece");
            }
            assertEquals(minSeq, p.get("max_sequences").asLong(), what);
            assertTrue(minSeq >= concurrency, what);
        }
    }

    /** The bytes plan predicts are the bytes the loader holds: a 2:4 model pruned here, planned and inspected. */
    @Test
    void aPrunedFolderIsPlannedInItsOwnFormatAndMatchesInspect() throws Exception {
        Path out = tmp.resolve("pruned-24");
        CliRunner pruned = CliRunner.run("prune", "--model", io.sparseserve.TestData.bundledModel().toString(), "--out",
                out.toString(), "--method", "magnitude", "--pattern", "2:4");
        assertEquals(0, pruned.exitCode(), pruned.err());
        JsonNode inspect = plan("inspect", "--model", out.toString(), "--json");
        JsonNode j = plan("plan", "--model", out.toString(), "--gpu", "h200", "--json");
        assertEquals(2, j.get("plans").size(), "dense and the folder's own format");
        JsonNode p = j.get("plans").get(1);
        assertEquals("sparse-24-bitmask", p.get("format").asText());
        assertEquals(inspect.get("linear_weight_bytes").asLong(), p.get("linear_bytes_per_layer").asLong() * j.get("layers").asLong());
        assertEquals(inspect.get("linear_dense_equivalent_bytes").asLong(),
                p.get("linear_dense_bytes_per_layer").asLong() * j.get("layers").asLong());
        // inspect lists matrices only; plan adds the norms (2 per layer and the final one, hidden BF16 values each).
        long norms = (2L * j.get("layers").asLong() + 1) * j.get("hidden").asLong() * 2;
        assertEquals(inspect.get("weight_bytes").asLong() + norms, p.get("weight_bytes").asLong());
    }

    @Test
    void aBareConfigWithoutTorchDtypeNeedsDtype() throws Exception {
        ObjectMapper m = new ObjectMapper();
        var node = (com.fasterxml.jackson.databind.node.ObjectNode) m.readTree(CONFIGS.resolve("llama-2-70b/config.json").toFile());
        node.remove("torch_dtype");
        Path file = tmp.resolve("config.json");
        Files.writeString(file, node.toString());
        CliRunner r = CliRunner.run("plan", "--model", file.toString(), "--gpu", "h100-80g");
        assertEquals(2, r.exitCode());
        assertTrue(r.err().contains("--dtype"), r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        JsonNode j = plan("plan", "--model", file.toString(), "--gpu", "h100-80g", "--dtype", "bf16", "--dense", "--json");
        assertEquals(1, j.get("plans").size());
        assertEquals("bf16", j.get("dtype").asText());
    }

    @Test
    void badOptionsAreOneLineAndExitTwo() {
        String model = CONFIGS.resolve("opt-66b").toString();
        String[][] bad = {
            {"--gpu", "v100"}, {"--gpu-memory", "lots"}, {"--gpu-memory", "80GiB", "--context", "0"},
            {"--gpu-memory", "80GiB", "--sparsity", "1.5"}, {"--gpu-memory", "80GiB", "--pattern", "2-4"},
            {"--gpu-memory", "80GiB", "--kv-dtype", "fp8"}, {"--gpu-memory", "1GiB"}, {"--gpu-memory", "80GiB", "--gpu-memory-utilization", "0"},
        };
        for (String[] args : bad) {
            List<String> all = new ArrayList<>(List.of("plan", "--model", model));
            all.addAll(List.of(args));
            CliRunner r = CliRunner.run(all.toArray(String[]::new));
            assertEquals(2, r.exitCode(), String.join(" ", args) + ": " + r.err());
            assertFalse(r.err().contains("Exception"), r.err());
        }
    }
}
