package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A dense copy of a pruned model loads compressed under {@code --compress auto} (inspect says what it found) and
 * {@code bench --compare} measures several models in one run, with ratios to the first.
 */
class SparseLoadAndCompareTest {
    @TempDir Path tmp;

    private static JsonNode json(CliRunner r) throws Exception {
        assertEquals(0, r.exitCode(), "stderr: " + r.err());
        return new ObjectMapper().readTree(r.out());
    }

    @Test
    void aDenseCopyWithZerosLoadsCompressedAndComparesWithTheCompressedFile() throws Exception {
        Path base = tmp.resolve("base"), sparse = tmp.resolve("sparse"), dense = tmp.resolve("dense"), nm = tmp.resolve("nm");
        CliRunner s = CliRunner.run("synth", "--family", "llama", "--hidden", "64", "--layers", "2", "--heads", "4",
                "--kv-heads", "2", "--intermediate", "128", "--vocab", "500", "--context", "64", "--dtype", "bf16",
                "--out", base.toString());
        assertEquals(0, s.exitCode(), s.err());
        for (String[] a : new String[][] {{sparse.toString(), "sparse", "--sparsity", "0.5"}, {dense.toString(), "dense", "--sparsity", "0.5"},
                {nm.toString(), "dense", "--pattern", "2:4"}}) {
            CliRunner p = CliRunner.run("prune", "--method", "magnitude", "--model", base.toString(), a[2], a[3], "--format", a[1],
                    "--out", a[0]);
            assertEquals(0, p.exitCode(), p.err());
        }
        JsonNode auto = json(CliRunner.run("inspect", "--model", dense.toString(), "--json"));
        JsonNode off = json(CliRunner.run("inspect", "--model", dense.toString(), "--compress", "off", "--json"));
        JsonNode file = json(CliRunner.run("inspect", "--model", sparse.toString(), "--json"));
        assertEquals(14, auto.get("compressed_at_load").asInt());
        assertEquals(0, off.get("compressed_at_load").asInt());
        assertEquals(file.get("weight_bytes").asLong(), auto.get("weight_bytes").asLong());
        assertTrue(off.get("weight_bytes").asLong() > auto.get("weight_bytes").asLong());
        JsonNode q = auto.get("tensors").get(1);
        assertEquals("sparse-bitmask", q.get("format").asText());
        assertEquals("dense", q.get("stored_format").asText());
        assertEquals("unstructured", q.get("detected").asText());
        JsonNode nmq = json(CliRunner.run("inspect", "--model", nm.toString(), "--json")).get("tensors").get(1);
        assertEquals("sparse-24-bitmask", nmq.get("format").asText());
        assertEquals("2:4", nmq.get("detected").asText());
        assertEquals("dense", json(CliRunner.run("inspect", "--model", base.toString(), "--json")).get("tensors").get(1)
                .get("detected").asText());

        JsonNode c = json(CliRunner.run("bench", "--compare", base.toString(), sparse.toString(), dense.toString(),
                "--batches", "1,3", "--rounds", "2", "--warmup-seconds", "0", "--new-tokens", "2", "--prompt-tokens", "8", "--json"));
        JsonNode models = c.get("models");
        assertEquals(3, models.size());
        assertEquals(1.0, models.get(0).get("bytes_ratio").asDouble());
        assertEquals(1.0, models.get(0).get("prefill_ratio").asDouble());
        assertTrue(models.get(1).get("bytes_ratio").asDouble() > 1.2, models.get(1).toString());
        assertEquals(models.get(1).get("streamed_bytes_per_token").asLong(), models.get(2).get("streamed_bytes_per_token").asLong());
        for (JsonNode m : models) {
            assertEquals(2, m.get("decode").size());
            assertEquals(3, m.get("decode").get(1).get("batch").asInt());
            assertEquals(2, m.get("decode").get(0).get("rounds").size());
            assertTrue(m.get("decode").get(0).get("tokens_per_s").asDouble() > 0);
            assertTrue(m.get("prefill_tokens_per_s").asDouble() > 0);
        }
        assertEquals(1.0, models.get(0).get("decode").get(1).get("ratio").asDouble());
        CliRunner text = CliRunner.run("bench", "--compare", base.toString(), sparse.toString(), "--rounds", "1",
                "--warmup-seconds", "0", "--new-tokens", "2", "--prompt-tokens", "8", "--batches", "1");
        assertEquals(0, text.exitCode(), text.err());
        assertTrue(text.out().contains("b1 tok/s"), text.out());
    }

    @Test
    void badUsageExitsTwoWithOneLine() {
        String model = TestData.bundledModel().toString();
        String[][] cases = {
            {"inspect", "--model", model, "--compress", "maybe"},
            {"bench"},
            {"bench", "--model", model, "--compare", model},
            {"bench", "--compare", model, "--batches", "0"},
            {"bench", "--compare", model, tmp.resolve("missing").toString(), "--warmup-seconds", "0"},
        };
        for (String[] args : cases) {
            CliRunner r = CliRunner.run(args);
            assertEquals(2, r.exitCode(), String.join(" ", args) + " -> " + r.err());
            assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
            assertTrue(r.err().startsWith("error: "), r.err());
        }
    }
}
