package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.TestData;
import io.sparseserve.engine.Engine;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpResponse;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A body over the 4 MiB limit is a client's mistake: it gets an OpenAI-shaped 413 and the server keeps serving. Before,
 * Vert.x answered plain text and logged "Unhandled exception in router" at ERROR for every such request (found by
 * the adversarial suite's 10 MB bodies, loadtest/abuse/).
 */
class OversizedBodyTest {
    private static ServerFixture f;

    @BeforeAll
    static void start() {
        f = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults());
    }

    @AfterAll
    static void stop() throws InterruptedException {
        f.close();
    }

    @Test
    void bodyOverTheLimitGetsAJson413AndTheServerKeepsServing() throws Exception {
        String big = "{\"max_tokens\":4,\"prompt\":\"" + "a".repeat((4 << 20) + 1024) + "\"}";
        for (String path : new String[] {"/v1/completions", "/v1/chat/completions"}) {
            HttpResponse<String> r = f.post(path, big);
            assertEquals(413, r.statusCode(), path);
            assertEquals("application/json", r.headers().firstValue("content-type").orElse(""), path);
            assertEquals("invalid_request_error", new JsonObject(r.body()).getJsonObject("error").getString("type"), path);
        }
        HttpResponse<String> ok = f.post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":2}");
        assertEquals(200, ok.statusCode(), ok.body());
    }
}
