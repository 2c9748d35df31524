package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.GetModelInfoRequest;
import io.sparseserve.api.v1.ModelInfo;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.engine.Engine;
import io.sparseserve.engine.Generator;
import io.sparseserve.engine.SamplingParams;
import io.vertx.core.json.JsonObject;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The server on a pruned copy of the bundled model (half of every decoder linear zero, dense format). */
class PrunedModelServerTest {
    @TempDir static Path tmp;
    static ServerFixture f;

    @BeforeAll
    static void start() throws Exception {
        Path pruned = PrunedModels.halfPrunedCopy(TestData.bundledModel(), tmp.resolve("kdoc-llama-5m-50pct"));
        f = new ServerFixture(pruned, Engine.Config.defaults());
    }

    @AfterAll
    static void stop() throws Exception {
        f.close();
    }

    @Test
    void servesThePrunedModelAndReportsItsSparsity() throws Exception {
        ModelInfo info = f.blocking().getModelInfo(GetModelInfoRequest.getDefaultInstance());
        assertEquals("kdoc-llama-5m-50pct", info.getModelId());
        assertTrue(Math.abs(info.getSparsity() - 0.5) < 0.01, "sparsity " + info.getSparsity());

        Generator.Result expected = new Generator(f.model, f.tokenizer, ModelRunners.cpu())
                .generate(f.tokenizer.encode("Once upon a time"), SamplingParams.greedy(), 30, false, null);
        GenerateRequest request = GenerateRequest.newBuilder().setPrompt("Once upon a time").setMaxNewTokens(30).build();
        var unary = f.blocking().generate(request);
        assertArrayEquals(expected.tokenIds(), unary.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray());
        assertEquals(expected.text(), unary.getText());

        StringBuilder text = new StringBuilder();
        List<GenerateStreamResponse> messages = new ArrayList<>();
        f.blocking().generateStream(request).forEachRemaining(messages::add);
        messages.forEach(m -> text.append(m.getText()));
        assertEquals(expected.text(), text.toString());
        assertEquals(expected.finishReason().name(), messages.getLast().getFinishReason().name());

        var sse = f.post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"temperature\":0,\"stream\":true}");
        StringBuilder sseText = new StringBuilder();
        sse.body().lines().filter(l -> l.startsWith("data: {")).forEach(l -> sseText.append(
                new JsonObject(l.substring(6)).getJsonArray("choices").getJsonObject(0).getString("text")));
        assertEquals(expected.text(), sseText.toString());

        assertEquals(f.model.weightBytes(), f.metric("sparseserve_model_weight_bytes{kind=\"actual\"}"));
        assertTrue(f.metric("sparseserve_requests_total{finish_reason=\"" + expected.finishReason().name().toLowerCase()
                + "\",status=\"ok\"}") >= 3);
    }
}
