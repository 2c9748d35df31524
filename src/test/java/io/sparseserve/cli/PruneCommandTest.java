package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.eval.Perplexity;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.NmMatrix;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code sparse-serve prune} end to end through {@link Main#run}: real fixtures, real files, exit codes. */
class PruneCommandTest {
    @TempDir Path tmp;

    record Run(int exit, String out, String err) {}

    static Run run(String... args) {
        CliRunner r = CliRunner.run(args);
        return new Run(r.exitCode(), r.out(), r.err());
    }

    static String calibration() {
        return TestData.testText60k().toString();
    }

    private String[] prune(String fixture, Path out, String... extra) {
        List<String> a = new ArrayList<>(List.of("prune", "--model", TestData.fixture(fixture).toString(), "--out",
                out.toString(), "--calibration", calibration(), "--nsamples", "6", "--seq-len", "32"));
        a.addAll(List.of(extra));
        return a.toArray(String[]::new);
    }

    private static double perplexity(Path model, int windows) {
        try (Model m = Model.load(model); Tokenizer tok = Tokenizer.load(model.resolve("tokenizer.json"))) {
            int[] ids = tok.encode(Files.readString(TestData.testText60k()).substring(0, 20_000));
            return Perplexity.evaluate(m, ModelRunners.cpu(), ids, 64, windows, null).perplexity();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT})
    void sparseGptPrunesEachFamilyCompressedAndDense(String fixture) throws IOException {
        Path sparse = tmp.resolve("sparse"), dense = tmp.resolve("dense");
        Run r = run(prune(fixture, sparse, "--method", "sparsegpt", "--sparsity", "0.5", "--json"));
        assertEquals(0, r.exit(), r.err());
        JsonNode summary = new ObjectMapper().readTree(r.out());
        assertEquals("sparsegpt", summary.path("method").asText());
        assertEquals(2, summary.path("layers").size());
        double sparsity = summary.path("sparsity").asDouble();
        assertTrue(sparsity >= 0.5 && sparsity < 0.51, "sparsity " + sparsity);
        JsonNode firstLinear = summary.path("layers").get(0).path("linears").get(0);
        assertTrue(firstLinear.path("relative_error").asDouble() > 0 && firstLinear.path("relative_error").asDouble() < 1);
        assertTrue(r.err().contains("layer 1: 7 linears") || r.err().contains("layer 1: 6 linears"), r.err());
        Run d = run(prune(fixture, dense, "--method", "sparsegpt", "--sparsity", "0.5", "--format", "dense"));
        assertEquals(0, d.exit(), d.err());

        try (Model s = Model.load(sparse); Model dm = Model.load(dense, Model.Compress.OFF)) {
            for (int l = 0; l < s.weights().layers().size(); l++) {
                for (Linear lin : s.weights().layers().get(l).linears()) assertInstanceOf(BitmaskMatrix.class, lin.weight());
                for (Linear lin : dm.weights().layers().get(l).linears()) {
                    assertEquals("dense", lin.weight().format());
                    double z = (double) lin.weight().zeros() / ((long) lin.weight().rows() * lin.weight().cols());
                    assertTrue(z >= 0.5 && z < 0.51, lin.name() + " sparsity " + z);
                }
            }
        }
        // Two runs need not agree to the last bit (see LayerwisePruner); both must be close to each other and apart
        // from the dense model.
        double ps = perplexity(sparse, 6), pd = perplexity(dense, 6), p0 = perplexity(TestData.fixture(fixture), 6);
        assertEquals(pd, ps, 0.05 * pd, "compressed and dense runs");
        assertTrue(Math.abs(ps - p0) > 1e-6, "pruning changed the model");
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT})
    void twoFourPatternIsStoredAsSparse24(String fixture) {
        for (String method : new String[] {"sparsegpt", "wanda", "magnitude"}) {
            Path out = tmp.resolve(method);
            Run r = run(prune(fixture, out, "--method", method, "--pattern", "2:4"));
            assertEquals(0, r.exit(), r.err());
            try (Model m = Model.load(out)) {
                for (Layer layer : m.weights().layers()) {
                    for (Linear lin : layer.linears()) {
                        NmMatrix w = assertInstanceOf(NmMatrix.class, lin.weight(), lin.name());
                        float[] v = new float[w.rows() * w.cols()];
                        w.decode(0, w.rows(), 0, w.cols(), v, 0);
                        for (int g = 0; g < v.length; g += 4) {
                            int kept = 0;
                            for (int k = 0; k < 4; k++) if (v[g + k] != 0) kept++;
                            assertTrue(kept <= 2, method + " " + lin.name() + " group " + g);
                        }
                    }
                }
            }
        }
    }

    /** The one test on the bundled (really trained) model: few samples, few windows. */
    @Test
    void onTheBundledModelSparseGptBeatsMagnitude() {
        String model = TestData.bundledModel().toString();
        Path sgpt = tmp.resolve("sgpt"), mag = tmp.resolve("mag");
        assertEquals(0, run("prune", "--model", model, "--out", sgpt.toString(), "--method", "sparsegpt", "--calibration",
                calibration(), "--nsamples", "16").exit());
        assertEquals(0, run("prune", "--model", model, "--out", mag.toString(), "--method", "magnitude").exit());
        double dense = perplexity(TestData.bundledModel(), 24), s = perplexity(sgpt, 24), m = perplexity(mag, 24);
        assertTrue(dense < s && s < m, "dense " + dense + ", sparsegpt " + s + ", magnitude " + m);
    }

    @Test
    void ignoreLeavesMatchingLinearsDenseAndForceReplaces() throws IOException {
        Path out = tmp.resolve("out");
        assertEquals(0, run(prune(TestData.TINY_LLAMA, out, "--method", "wanda", "--sparsity", "0.6")).exit());
        Run again = run(prune(TestData.TINY_LLAMA, out, "--method", "magnitude", "--ignore", "mlp\\.down_proj|layers\\.1\\.self_attn",
                "--force", "--json"));
        assertEquals(0, again.exit(), again.err());
        JsonNode summary = new ObjectMapper().readTree(again.out());
        assertEquals(6, summary.path("ignored").size(), summary.path("ignored").toString());
        try (Model m = Model.load(out)) {
            assertEquals("dense", m.weights().layers().get(0).linears().get(6).weight().format());
            assertEquals("dense", m.weights().layers().get(1).q().weight().format());
            assertEquals("sparse-bitmask", m.weights().layers().get(1).linears().get(4).weight().format());
        }
        JsonNode ignore = TestData.json(out.resolve("config.json")).path("quantization_config").path("sparsity_config").path("ignore");
        assertTrue(ignore.toString().contains("model.layers.0.mlp.down_proj"), ignore.toString());
        assertEquals("magnitude", TestData.json(out.resolve("config.json")).path("pruning").path("method").asText());
    }

    @Test
    void badOptionsAndInputsExitTwoWithOneLine() throws IOException {
        Path out = tmp.resolve("out");
        Path empty = Files.writeString(tmp.resolve("empty.txt"), "  \n");
        Path shortText = Files.writeString(tmp.resolve("short.txt"), "A few words of text.");
        Path noWeights = Files.createDirectories(tmp.resolve("no-weights"));
        Files.copy(TestData.fixture(TestData.TINY_LLAMA).resolve("config.json"), noWeights.resolve("config.json"));
        String llama = TestData.fixture(TestData.TINY_LLAMA).toString();
        String[][] cases = {
                {"--sparsity must be in [0, 1)", "--method", "sparsegpt", "--sparsity", "1"},
                {"--sparsity must be in [0, 1)", "--method", "magnitude", "--sparsity", "1.5"},
                {"1 <= N < M", "--method", "sparsegpt", "--pattern", "4:4"},
                {"1 <= N < M", "--method", "sparsegpt", "--pattern", "6:4"},
                {"not a multiple of M = 3", "--method", "sparsegpt", "--pattern", "2:3", "--blocksize", "3"},
                {"must be a multiple of M = 8", "--method", "sparsegpt", "--pattern", "4:8", "--blocksize", "100"},
                {"not both", "--method", "sparsegpt", "--pattern", "2:4", "--sparsity", "0.5"},
                {"--method must be", "--method", "obs"},
                {"needs --calibration", "--method", "wanda", "--calibration-missing"},
                {"calibration text is empty", "--method", "sparsegpt", "--calibration", empty.toString()},
                {"need at least 33", "--method", "sparsegpt", "--calibration", shortText.toString()},
                {"not a valid regular expression", "--method", "magnitude", "--ignore", "(unclosed"},
                {"--seq-len must be in [1, 256]", "--method", "sparsegpt", "--seq-len", "300"},
        };
        for (String[] c : cases) {
            List<String> a = new ArrayList<>(List.of("prune", "--model", llama, "--out", out.toString()));
            boolean hasCalibration = List.of(c).contains("--calibration");
            for (int i = 1; i < c.length; i++) if (!c[i].equals("--calibration-missing")) a.add(c[i]);
            if (!hasCalibration && !List.of(c).contains("--calibration-missing")) a.addAll(List.of("--calibration", calibration()));
            if (!a.contains("--seq-len")) a.addAll(List.of("--seq-len", "32", "--nsamples", "4"));
            assertBadInput(a.toArray(String[]::new), c[0]);
        }
        assertBadInput(new String[] {"prune", "--model", tmp.resolve("missing").toString(), "--out", out.toString(),
                "--method", "magnitude"}, "not a model folder");
        assertBadInput(new String[] {"prune", "--model", noWeights.toString(), "--out", out.toString(),
                "--method", "magnitude"}, "no model.safetensors");
        assertBadInput(new String[] {"prune", "--model", llama, "--out", llama, "--method", "magnitude", "--force"},
                "would overwrite the model");
        Files.createDirectories(out);
        assertBadInput(prune(TestData.TINY_LLAMA, out, "--method", "magnitude"), "already exists (use --force");
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(), files.filter(p -> p.getFileName().toString().startsWith(".")).toList(),
                    "no temporary folders left behind");
        }
    }

    private void assertBadInput(String[] args, String message) {
        Run r = run(args);
        assertEquals(2, r.exit(), String.join(" ", args) + "\n" + r.err());
        assertTrue(r.err().contains(message), "expected '" + message + "' in: " + r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        assertFalse(Files.exists(tmp.resolve("out")) && !message.startsWith("already exists"), "no output written");
    }
}
