package io.sparseserve.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.TestData;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

/** config.json's rotary fields in both spellings, and the frequencies each rope type gives. */
class RopeScalingTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path FILE = Path.of("config.json");

    private static ObjectNode llama3Config() throws Exception {
        return (ObjectNode) JSON.readTree(TestData.fixture(TestData.TINY_LLAMA3).resolve("config.json").toFile());
    }

    @Test
    void ropeParametersAndRopeScalingGiveTheSameTables() throws Exception {
        ObjectNode classic = llama3Config();
        ObjectNode v5 = classic.deepCopy();
        ObjectNode params = ((ObjectNode) v5.remove("rope_scaling")).put("rope_theta", v5.remove("rope_theta").asDouble());
        v5.set("rope_parameters", params);
        ModelConfig a = ModelConfig.parse(FILE, classic), b = ModelConfig.parse(FILE, v5);
        assertEquals(a.ropeScaling(), b.ropeScaling());
        assertEquals(a.ropeTheta(), b.ropeTheta());
        assertArrayEquals(Rotary.tables(a).cos(), Rotary.tables(b).cos());
        assertEquals(RopeScaling.Type.LLAMA3, a.ropeScaling().type());
    }

    @Test
    void llama3KeepsHighFrequenciesSlowsLowOnesAndBlendsBetween() {
        RopeScaling s = new RopeScaling(RopeScaling.Type.LLAMA3, 8, 1, 4, 64);
        double high = 2 * Math.PI / 8; // wavelength 8 < 64/4
        double low = 2 * Math.PI / 128; // wavelength 128 > 64/1
        double mid = 2 * Math.PI / 32; // in between: smooth = (64/32 - 1) / 3 = 1/3
        assertEquals(high, s.scale(high), 0);
        assertEquals(low / 8, s.scale(low), 0);
        assertEquals((2.0 / 3) * mid / 8 + (1.0 / 3) * mid, s.scale(mid), 1e-15);
        assertEquals(0.25, new RopeScaling(RopeScaling.Type.LINEAR, 4, 1, 1, 0).scale(1.0), 0);
    }

    @Test
    void unknownTypesAndBadFieldsAreRefused() throws Exception {
        ObjectNode c = llama3Config();
        ((ObjectNode) c.get("rope_scaling")).put("rope_type", "dynamic");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelConfig.parse(FILE, c));
        assertTrue(e.getMessage().contains("rope type 'dynamic'"), e.getMessage());
        ObjectNode d = llama3Config();
        ((ObjectNode) d.get("rope_scaling")).put("factor", -1);
        assertTrue(assertThrows(ModelFormatException.class, () -> ModelConfig.parse(FILE, d)).getMessage()
                .contains("rope_scaling.factor"));
        ObjectNode old = llama3Config();
        ((ObjectNode) old.get("rope_scaling")).remove("rope_type");
        ((ObjectNode) old.get("rope_scaling")).put("type", "linear");
        assertEquals(RopeScaling.Type.LINEAR, ModelConfig.parse(FILE, old).ropeScaling().type());
    }

    @Test
    void qwen2HasBiasesOnQkvOnlyAndMistralLoadsAsLlama() throws Exception {
        ModelConfig q = ModelConfig.read(TestData.fixture(TestData.TINY_QWEN2));
        assertTrue(q.qkvBias() && !q.attentionBias());
        try (Model m = Model.load(TestData.fixture(TestData.TINY_QWEN2))) {
            ModelWeights.Layer layer = m.weights().layers().get(0);
            assertTrue(layer.q().bias() != null && layer.k().bias() != null && layer.v().bias() != null);
            assertEquals(null, layer.o().bias());
        }
        ObjectNode mistral = llama3Config().put("model_type", "mistral").putNull("sliding_window");
        assertEquals(Family.LLAMA, ModelConfig.parse(FILE, mistral).family());
        assertEquals(0, ModelConfig.parse(FILE, mistral).slidingWindow());
    }
}
