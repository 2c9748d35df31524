package io.sparseserve.prune;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.TestData;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelFormatException;
import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.SafetensorsFile;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.model.TensorInfo;
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
                out.put(lin.name(), switch (format) {
                    case "dense" -> DenseMatrix.fromFloats(v, w.rows(), w.cols(), w.dtype());
                    case "24" -> NmMatrix.fromDense(v, w.rows(), w.cols(), 2, 4, w.dtype());
                    default -> BitmaskMatrix.fromDense(v, w.rows(), w.cols(), w.dtype());
                });
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
            PrunedModelWriter.write(m, pruned, List.of(), p.structure(), 0.5, null, out, false);
        }
        try (Model back = Model.load(out); Model orig = Model.load(TestData.fixture(fixture))) {
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

    @Test
    void legacyWeightPrefixedNamesLoad() throws IOException {
        Path out = tmp.resolve("pruned");
        Map<String, float[]> expected;
        try (Model m = Model.load(TestData.fixture(TestData.TINY_LLAMA))) {
            Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
            expected = prune(m, new SparsityPattern.Unstructured(0.5), pruned, "bitmask");
            PrunedModelWriter.write(m, pruned, List.of(), "unstructured", 0.5, null, out, false);
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
            PrunedModelWriter.write(m, pruned, List.of(), "unstructured", 0.5, null, out, false);
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
