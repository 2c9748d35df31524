package io.sparseserve.prune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.cpu.CpuBackend;
import io.sparseserve.eval.Perplexity;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelFormatException;
import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.SafetensorsFile;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.model.TensorInfo;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Pruned weights written in each layout and loaded back decode to exactly the pruned dense matrices. */
class CompressedRoundTripTest {
    @TempDir Path tmp;

    /** Magnitude-prunes every decoder linear of a fixture and keeps it in the requested in-memory format. */
    static Map<String, float[]> prune(Model m, SparsityPattern p, Map<String, WeightMatrix> out, String format) {
        Map<String, float[]> dense = new LinkedHashMap<>();
        for (Layer layer : m.weights().layers()) {
            for (Linear lin : layer.linears()) {
                WeightMatrix w = lin.weight();
                float[] v = new float[w.rows() * w.cols()];
                w.decode(0, w.rows(), 0, w.cols(), v, 0);
                Magnitude.prune(v, w.rows(), w.cols(), p);
                dense.put(lin.name(), v);
                out.put(lin.name(), format.equals("24") ? NmMatrix.fromDense(v, w.rows(), w.cols(), 2, 4, w.dtype())
                        : BitmaskMatrix.fromDense(v, w.rows(), w.cols(), w.dtype()));
            }
        }
        return dense;
    }

    @ParameterizedTest
    @CsvSource({TestData.TINY_LLAMA + ", bitmask", TestData.TINY_OPT + ", bitmask", TestData.TINY_LLAMA + ", 24",
            TestData.TINY_OPT + ", 24", TestData.TINY_OPT + ", dense"})
    void writeThenLoadDecodesThePrunedMatrices(String fixture, String format) throws IOException {
        Path out = tmp.resolve("pruned");
        Map<String, float[]> expected;
        SparsityPattern p = format.equals("24") ? new SparsityPattern.NM(2, 4) : new SparsityPattern.Unstructured(0.5);
        try (Model m = Model.load(TestData.fixture(fixture))) {
            Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
            expected = prune(m, p, pruned, format);
            var layout = format.equals("dense") ? PrunedModelWriter.Layout.DENSE : PrunedModelWriter.Layout.SPARSE;
            PrunedModelWriter.write(m, pruned, List.of(), p.structure(), 0.5, null, layout, out, false);
        }
        try (Model back = Model.load(out, Model.Compress.OFF); Model orig = Model.load(TestData.fixture(fixture))) {
            for (Layer layer : back.weights().layers()) {
                for (Linear lin : layer.linears()) {
                    WeightMatrix w = lin.weight();
                    switch (format) {
                        case "24" -> assertInstanceOf(NmMatrix.class, w);
                        case "dense" -> assertInstanceOf(DenseMatrix.class, w);
                        default -> assertInstanceOf(BitmaskMatrix.class, w);
                    }
                    float[] got = new float[w.rows() * w.cols()];
                    w.decode(0, w.rows(), 0, w.cols(), got, 0);
                    assertArrayEquals(expected.get(lin.name()), got, lin.name());
                }
            }
            // Everything else is copied unchanged.
            float[] a = new float[orig.config().hidden()], b = new float[a.length];
            orig.weights().embed().decode(7, 1, 0, a.length, a, 0);
            back.weights().embed().decode(7, 1, 0, b.length, b, 0);
            assertArrayEquals(a, b);
            assertTrue(Files.isRegularFile(out.resolve("tokenizer.json")));
            JsonNode config = TestData.json(out.resolve("config.json"));
            if (format.equals("dense")) {
                assertTrue(config.path("quantization_config").isMissingNode());
            } else {
                JsonNode sc = config.path("quantization_config").path("sparsity_config");
                assertEquals("compressed-tensors", config.path("quantization_config").path("quant_method").asText());
                assertEquals(format.equals("24") ? "sparse-24-bitmask" : "sparse-bitmask", sc.path("format").asText());
                assertEquals(p.structure(), sc.path("sparsity_structure").asText());
                long linearBytes = 0, denseBytes = 0;
                for (Model.NamedMatrix nm : back.matrices()) {
                    if (!nm.linear()) continue;
                    linearBytes += nm.matrix().bytes();
                    denseBytes += nm.matrix().denseBytes();
                }
                // Half the values, plus 1 bit per element and (sparse-bitmask) 8 bytes per row: for these 64-column
                // matrices of 16-bit values that is (1 + 1/8 + 1/8) / 2 of the dense bytes.
                assertTrue(linearBytes <= 0.63 * denseBytes, linearBytes + " of " + denseBytes);
            }
        }
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(out), files.toList(), "no temporary folders left beside the output");
        }
    }

    /** One SparseGPT run written compressed and dense: same weights, same logits, same perplexity. */
    @ParameterizedTest
    @CsvSource({TestData.TINY_LLAMA + ", 0.5", TestData.TINY_OPT + ", 0.5", TestData.TINY_LLAMA + ", 2:4",
            TestData.TINY_OPT + ", 2:4"})
    void oneRunWrittenCompressedAndDenseEvaluatesTheSame(String fixture, String spec) throws IOException {
        SparsityPattern p = spec.contains(":") ? SparsityPattern.parsePattern(spec)
                : new SparsityPattern.Unstructured(Double.parseDouble(spec));
        Path sparse = tmp.resolve("sparse"), dense = tmp.resolve("dense");
        String text = Files.readString(TestData.testText60k());
        int[] ids;
        try (Tokenizer tok = Tokenizer.load(TestData.fixture(fixture).resolve("tokenizer.json"))) {
            ids = tok.encode(text.substring(0, 20_000));
        }
        try (Model m = Model.load(TestData.fixture(fixture))) {
            Calibration cal = Calibration.sample(ids, 6, 32, 0);
            var options = new LayerwisePruner.Options(LayerwisePruner.Method.SPARSEGPT, p, 128, 0.01, null);
            LayerwisePruner.Result r = LayerwisePruner.run(m, cal, new CpuBackend(32), options, null);
            for (var lr : r.layers()) for (var li : lr.linears()) assertTrue(li.relativeError() > 0 && li.relativeError() < 1, li.toString());
            PrunedModelWriter.write(m, r.pruned(), r.ignored(), p.structure(), r.sparsity(), null, PrunedModelWriter.Layout.SPARSE, sparse, false);
            PrunedModelWriter.write(m, r.pruned(), r.ignored(), p.structure(), r.sparsity(), null, PrunedModelWriter.Layout.DENSE, dense, false);
        }
        try (Model s = Model.load(sparse); Model d = Model.load(dense, Model.Compress.OFF); Model auto = Model.load(dense)) {
            for (int l = 0; l < s.weights().layers().size(); l++) {
                List<Linear> ls = s.weights().layers().get(l).linears(), ld = d.weights().layers().get(l).linears();
                for (int i = 0; i < ls.size(); i++) {
                    WeightMatrix a = ls.get(i).weight(), b = ld.get(i).weight();
                    assertEquals(p instanceof SparsityPattern.NM ? "sparse-24-bitmask" : "sparse-bitmask", a.format());
                    assertInstanceOf(DenseMatrix.class, b);
                    float[] va = new float[a.rows() * a.cols()], vb = new float[va.length];
                    a.decode(0, a.rows(), 0, a.cols(), va, 0);
                    b.decode(0, b.rows(), 0, b.cols(), vb, 0);
                    assertArrayEquals(vb, va, ls.get(i).name());
                }
            }
            var ps = Perplexity.evaluate(s, ModelRunners.cpu(), ids, 64, 8, null);
            var pd = Perplexity.evaluate(d, ModelRunners.cpu(), ids, 64, 8, null);
            assertEquals(pd.perplexity(), ps.perplexity(), 1e-4 * pd.perplexity());
            // --compress auto holds the dense copy as the compressed file holds it: same format, same bytes, and the
            // same perplexity to the last bit.
            assertEquals(s.weightBytes(), auto.weightBytes());
            for (int l = 0; l < s.weights().layers().size(); l++) {
                List<Linear> ls = s.weights().layers().get(l).linears(), la = auto.weights().layers().get(l).linears();
                for (int i = 0; i < ls.size(); i++) assertEquals(ls.get(i).weight().format(), la.get(i).weight().format());
            }
            // Same bits whatever the JIT has compiled by now (the kernels' lane sums have one order in every tier).
            double fromDense = Perplexity.evaluate(auto, ModelRunners.cpu(), ids, 64, 8, null).perplexity();
            assertEquals(Double.doubleToLongBits(ps.perplexity()), Double.doubleToLongBits(fromDense));
        }
    }

    @Test
    void aFailedWriteLeavesNothing() throws IOException {
        Path out = tmp.resolve("pruned");
        try (Model m = Model.load(TestData.fixture(TestData.TINY_LLAMA))) {
            Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
            prune(m, new SparsityPattern.NM(4, 8), pruned, "bitmask");
            // 4:8 has no N:M layout on disk: the writer fails after it has started the temporary folder.
            Linear q = m.weights().layers().get(1).q();
            float[] v = new float[q.weight().rows() * q.weight().cols()];
            pruned.get(q.name()).decode(0, q.weight().rows(), 0, q.weight().cols(), v, 0);
            pruned.put(q.name(), NmMatrix.fromDense(v, q.weight().rows(), q.weight().cols(), 4, 8, q.weight().dtype()));
            assertThrows(IllegalArgumentException.class, () -> PrunedModelWriter.write(m, pruned, List.of(), "4:8", 0.5,
                    null, PrunedModelWriter.Layout.SPARSE, out, false));
        }
        try (var files = Files.list(tmp)) {
            assertEquals(List.of(), files.toList(), "neither the output nor its temporary folder");
        }
    }

    @Test
    void legacyWeightPrefixedNamesLoad() throws IOException {
        Path out = tmp.resolve("pruned");
        Map<String, float[]> expected;
        try (Model m = Model.load(TestData.fixture(TestData.TINY_LLAMA))) {
            Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
            expected = prune(m, new SparsityPattern.Unstructured(0.5), pruned, "bitmask");
            PrunedModelWriter.write(m, pruned, List.of(), "unstructured", 0.5, null, PrunedModelWriter.Layout.SPARSE, out, false);
        }
        // Rename "<module>.compressed" to "<module>.weight.compressed" etc., as older compressed-tensors wrote them.
        Path legacy = tmp.resolve("legacy");
        Files.createDirectories(legacy);
        Files.copy(out.resolve("config.json"), legacy.resolve("config.json"));
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorInfo t : f.tensors().values()) {
                String name = t.name();
                String module = io.sparseserve.model.CompressedWeights.moduleOfPart(name);
                if (module != null) name = module + ".weight" + name.substring(module.length());
                w.add(name, t.dtype(), t.shape(), t.data());
            }
            w.write(legacy.resolve("model.safetensors"));
        }
        try (Model back = Model.load(legacy)) {
            Linear q = back.weights().layers().get(1).q();
            assertInstanceOf(BitmaskMatrix.class, q.weight());
            float[] got = new float[q.weight().rows() * q.weight().cols()];
            q.weight().decode(0, q.weight().rows(), 0, q.weight().cols(), got, 0);
            assertArrayEquals(expected.get(q.name()), got);
        }
    }

    @Test
    void inconsistentCompressedPartsFailToLoadNamingTheModule() throws IOException {
        Path out = tmp.resolve("pruned");
        try (Model m = Model.load(TestData.fixture(TestData.TINY_LLAMA))) {
            Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
            prune(m, new SparsityPattern.Unstructured(0.5), pruned, "bitmask");
            PrunedModelWriter.write(m, pruned, List.of(), "unstructured", 0.5, null, PrunedModelWriter.Layout.SPARSE, out, false);
        }
        Path bad = tmp.resolve("bad");
        Files.createDirectories(bad);
        Files.copy(out.resolve("config.json"), bad.resolve("config.json"));
        String victim = "model.layers.0.mlp.up_proj.row_offsets";
        try (SafetensorsFile f = SafetensorsFile.open(out.resolve("model.safetensors"))) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (TensorInfo t : f.tensors().values()) {
                MemorySegment data = t.data();
                if (t.name().equals(victim)) {
                    data = MemorySegment.ofArray(data.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
                    data.set(java.lang.foreign.ValueLayout.JAVA_BYTE, 8, (byte) (data.get(java.lang.foreign.ValueLayout.JAVA_BYTE, 8) + 1));
                }
                w.add(t.name(), t.dtype(), t.shape(), data);
            }
            w.write(bad.resolve("model.safetensors"));
        }
        var e = assertThrows(ModelFormatException.class, () -> Model.load(bad).close());
        assertTrue(e.getMessage().contains("model.layers.0.mlp.up_proj") && e.getMessage().contains("row_offsets[1]"),
                e.getMessage());
        assertFalse(e.getMessage().contains("\n"));
    }
}
