package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import io.sparseserve.backend.Device;
import io.sparseserve.backend.DeviceOptions;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.LayerSplit;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.cli.Main;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/**
 * Which layers each stage of {@code --device cuda:N,M,...} holds: the split {@code plan --gpus N} prints unless
 * {@code --layer-split} says otherwise, checked against the model before any device is touched.
 */
class StageLayoutTest {

    private static DeviceOptions split(String spec) {
        return new DeviceOptions(null, 0.9, SparseKernel.AUTO, spec == null ? null : LayerSplit.parse(spec));
    }

    /** plan's own answer, through the command line. */
    private static String planSplit(Path model, int gpus, String kv) throws Exception {
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), "plan", "--model", model.toString(),
                "--gpu-memory", "80GiB", "--gpus", String.valueOf(gpus), "--kv-dtype", kv, "--dense", "--json");
        assertEquals(0, code, err.toString());
        JsonNode j = new ObjectMapper().readTree(out.toString());
        assertEquals(gpus, j.get("split_gpus").asInt());
        JsonNode row = j.get("plans").get(0);
        assertEquals("dense", row.get("format").asText());
        assertTrue(row.get("fits").asBoolean());
        return row.get("layer_split").asText();
    }

    @Test
    void theDefaultSplitIsThePlans() throws Exception {
        for (Path dir : new Path[] {TestData.bundledModel(), TestData.fixture("tiny-llama-f32"), TestData.fixture("tiny-opt-f16")}) {
            try (Model m = Model.load(dir)) {
                for (String device : new String[] {"cuda:0,0", "cuda:0,1", "cuda:1,0"}) {
                    LayerSplit s = StageLayout.resolve(Device.parse(device), split(null), m);
                    assertEquals(planSplit(dir, 2, "bf16"), s.toString(), dir + " " + device);
                    assertEquals(m.config().layers(), s.layers());
                }
                if (m.config().layers() >= 3) {
                    assertEquals(planSplit(dir, 3, "bf16"), StageLayout.resolve(Device.parse("cuda:0,0,0"), split(null), m).toString());
                }
                // --kv-dtype f32 weighs the KV cache twice as much; the split follows plan with the same KV dtype
                DeviceOptions f32 = new DeviceOptions(KvDtype.F32, 0.9, SparseKernel.AUTO, null);
                assertEquals(planSplit(dir, 2, "f32"), StageLayout.resolve(Device.parse("cuda:0,1"), f32, m).toString());
                assertEquals(String.valueOf(m.config().layers()), StageLayout.resolve(Device.parse("cuda:0"), split(null), m).toString());
            }
        }
    }

    @Test
    void theBundledModelsDefaultSplitBalancesTheEmbeddingAgainstTheLayers() throws Exception {
        // 6 equal layers; the tied 4096x256 bf16 embedding (2 MiB) counts on both ends (the head is a copy of it on
        // the last stage): a symmetric problem, an even split.
        try (Model m = Model.load(TestData.bundledModel())) {
            assertEquals("3,3", StageLayout.resolve(Device.parse("cuda:0,0"), split(null), m).toString());
            assertEquals("cuda:0 layers 0-2, cuda:0 layers 3-5", StageLayout.describe(Device.parse("cuda:0,0"), LayerSplit.parse("3,3")));
        }
    }

    @Test
    void anExplicitSplitIsCheckedAgainstTheModelBeforeAnyDevice() throws Exception {
        try (Model m = Model.load(TestData.bundledModel())) {
            assertEquals(LayerSplit.parse("1,5"), StageLayout.resolve(Device.parse("cuda:0,0"), split("1,5"), m));
            RunnerConfig rc = RunnerConfig.forSequence(8, 16);
            // CudaRunners.open is what the factory's runners call: the split fails first, whether or not a GPU is here.
            InvalidInputException e = assertThrows(InvalidInputException.class,
                    () -> CudaRunners.open(Device.parse("cuda:0,0"), split("5,5"), m, rc));
            assertEquals("--layer-split 5,5 covers 10 layers; the model has 6", e.getMessage());
            e = assertThrows(InvalidInputException.class,
                    () -> CudaRunners.open(Device.parse("cuda:0,0,0,0,0,0,0"), split(null), m, rc));
            assertEquals("--device cuda:0,0,0,0,0,0,0: 7 stages, but the model has 6 layers (each stage holds at least one)",
                    e.getMessage());
            e = assertThrows(InvalidInputException.class, () -> CudaRunners.open(Device.parse("cuda:0,0"), split("6"), m, rc));
            assertTrue(e.getMessage().startsWith("--layer-split 6 has 1 layer count for --device cuda:0,0 (2 devices)"), e.getMessage());
        }
    }
}
