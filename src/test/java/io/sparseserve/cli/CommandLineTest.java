package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command-line contract of ARCHITECTURE.md: subcommands, their --json objects and their exit codes. */
class CommandLineTest {
    @TempDir Path tmp;

    private static JsonNode json(CliRunner r) throws Exception {
        assertEquals(0, r.exitCode(), "stderr: " + r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void generateGreedyReproducesTheBundledModelsReferenceText() throws Exception {
        JsonNode j = json(CliRunner.run("generate", "--model", TestData.bundledModel().toString(),
                "--prompt", "To enable this feature, ", "--max-new-tokens", "40", "--json"));
        // The greedy continuation quoted in the model's TRAINING.md (float32 reference).
        assertEquals("especially\n\tthe default value is 0.\n\ndrop_ftrace_notify_no\n\tThe value of the value is 0.\n\ndrop_ftrace",
                j.get("text").asText());
        assertEquals(40, j.get("token_ids").size());
        assertEquals("length", j.get("finish_reason").asText());
        assertTrue(j.get("prompt_token_ids").size() > 0);
    }

    @Test
    void generateSamplesReproduciblyWithASeed() throws Exception {
        String[] args = {"generate", "--model", TestData.bundledModel().toString(), "--prompt", "The kernel",
                "--max-new-tokens", "20", "--temperature", "0.8", "--top-p", "0.95", "--seed", "7", "--json"};
        assertEquals(json(CliRunner.run(args)).get("token_ids"), json(CliRunner.run(args)).get("token_ids"));
        assertEquals(7, json(CliRunner.run(args)).get("seed").asLong());
    }

    /** Without --seed, sampling draws a fresh seed each run (as llama.cpp and vLLM do) and --json reports it. */
    @Test
    void generateWithoutASeedIsRandomAndReportsTheSeed() throws Exception {
        String[] args = {"generate", "--model", TestData.bundledModel().toString(), "--prompt", "The kernel",
                "--max-new-tokens", "24", "--temperature", "1", "--ignore-eos", "--json"};
        JsonNode a = json(CliRunner.run(args)), b = json(CliRunner.run(args));
        assertNotEquals(a.get("seed").asLong(), b.get("seed").asLong());
        assertNotEquals(a.get("token_ids"), b.get("token_ids"));
        String[] again = java.util.Arrays.copyOf(args, args.length + 2);
        again[args.length] = "--seed";
        again[args.length + 1] = a.get("seed").asText();
        assertEquals(a.get("token_ids"), json(CliRunner.run(again)).get("token_ids"));
    }

    @Test
    void evalPrintsTheContractJson() throws Exception {
        JsonNode ref = TestData.reference(TestData.TINY_OPT);
        JsonNode j = json(CliRunner.run("eval", "--model", TestData.fixture(TestData.TINY_OPT).toString(),
                "--text", TestData.testText60k().toString(), "--seq-len", "64", "--max-windows", "4", "--json"));
        double want = ref.path("eval").path("perplexity").asDouble();
        assertEquals(want, j.get("perplexity").asDouble(), 1e-4 * want);
        assertEquals(4, j.get("windows").asInt());
        assertEquals(256, j.get("tokens").asInt());
        assertTrue(j.get("seconds").asDouble() > 0);
    }

    @Test
    void inspectReportsFormatsAndBytes() throws Exception {
        JsonNode j = json(CliRunner.run("inspect", "--model", TestData.bundledModel().toString(), "--json"));
        // kdoc-llama-5m: 6 layers x 7 linears + tied embeddings, all BF16 dense.
        assertEquals(43, j.get("tensors").size());
        long linear = 6L * 2 * (256 * 256 + 128 * 256 + 128 * 256 + 256 * 256 + 3 * 688 * 256);
        assertEquals(linear, j.get("linear_weight_bytes").asLong());
        assertEquals(linear + 2L * 4096 * 256, j.get("weight_bytes").asLong());
        assertEquals(j.get("weight_bytes").asLong(), j.get("dense_equivalent_bytes").asLong());
        assertEquals("dense", j.get("tensors").get(1).get("format").asText());
        assertEquals("BF16", j.get("tensors").get(1).get("dtype").asText());
    }

    @Test
    void synthThenBenchForBothFamilies() throws Exception {
        for (String family : new String[] {"llama", "opt"}) {
            Path out = tmp.resolve(family);
            CliRunner s = CliRunner.run("synth", "--family", family, "--hidden", "64", "--layers", "2", "--heads", "4",
                    "--kv-heads", family.equals("llama") ? "2" : "4", "--intermediate", "128", "--vocab", "500",
                    "--context", "128", "--dtype", "bf16", "--out", out.toString());
            assertEquals(0, s.exitCode(), s.err());
            JsonNode b = json(CliRunner.run("bench", "--model", out.toString(), "--new-tokens", "4", "--prompt-tokens", "32",
                    "--copy-mb", "16", "--rounds", "2", "--warmup-seconds", "0.5", "--json"));
            for (String key : new String[] {"decode_tokens_per_s", "decode_weight_gbps", "copy_gbps", "read_gbps",
                    "read_one_pass_gbps", "decode_bandwidth_ratio", "decode_read_ratio", "prefill_tokens_per_s",
                    "prefill_gflops", "weight_bytes", "rss_bytes"}) {
                assertTrue(b.get(key).asDouble() > 0, family + " " + key + " = " + b.get(key));
            }
            JsonNode i = json(CliRunner.run("inspect", "--model", out.toString(), "--json"));
            assertEquals(b.get("weight_bytes").asLong(), i.get("weight_bytes").asLong());
            assertEquals(2, b.get("rounds").size());
        }
    }

    @Test
    void badUsageExitsTwoWithOneLine() {
        String model = TestData.bundledModel().toString();
        String[][] cases = {
            {"generate", "--model", model, "--prompt", "x", "--top-p", "1.5"},
            {"generate", "--model", model, "--prompt", "x", "--temperature", "-1"},
            {"generate", "--model", model, "--prompt", "", "--max-new-tokens", "3"},
            {"generate", "--model", model, "--prompt", "x", "--max-new-tokens", "100000"},
            {"eval", "--model", model, "--text", tmp.resolve("none.txt").toString()},
            {"eval", "--model", model, "--text", TestData.testText60k().toString(), "--seq-len", "4096"},
            {"synth", "--family", "gpt2", "--hidden", "8", "--layers", "1", "--heads", "2", "--intermediate", "8",
                    "--vocab", "10", "--out", tmp.resolve("x").toString()},
            {"bench", "--model", model, "--batch", "0"},
            {"bench", "--model", model, "--rounds", "0"},
            {"bench", "--model", model, "--warmup-seconds", "-1"},
        };
        for (String[] args : cases) {
            CliRunner r = CliRunner.run(args);
            assertEquals(2, r.exitCode(), String.join(" ", args) + " -> " + r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
            assertTrue(r.err().startsWith("error: "), r.err());
        }
        assertEquals(2, CliRunner.run("eval", "--bogus").exitCode(), "unknown option");
    }
}
