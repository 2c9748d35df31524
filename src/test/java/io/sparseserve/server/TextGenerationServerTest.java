package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.reflection.v1.ServiceResponse;
import io.grpc.stub.StreamObserver;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.FinishReason;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.GetModelInfoRequest;
import io.sparseserve.api.v1.ModelInfo;
import io.sparseserve.api.v1.TokenizeRequest;
import io.sparseserve.api.v1.TokenizeResponse;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.engine.Engine;
import io.sparseserve.engine.Generator;
import io.sparseserve.engine.SamplingParams;
import io.vertx.core.json.JsonObject;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The server on the bundled model, through grpc-java's standard client and plain HTTP, over real sockets. */
class TextGenerationServerTest {
    static ServerFixture f;

    @BeforeAll
    static void start() {
        f = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults());
    }

    @AfterAll
    static void stop() throws Exception {
        f.close();
    }

    static Generator.Result alone(String prompt, int maxNew) {
        return new Generator(f.model, f.tokenizer, ModelRunners.cpu())
                .generate(f.tokenizer.encode(prompt), SamplingParams.greedy(), maxNew, false, null);
    }

    static GenerateRequest greedy(String prompt, int maxNew) {
        return GenerateRequest.newBuilder().setPrompt(prompt).setMaxNewTokens(maxNew).setRequestId("r-" + prompt.length()).build();
    }

    static int[] ids(List<Integer> list) {
        return list.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void unaryGenerateMatchesTheGenerateCommand() {
        Generator.Result expected = alone("Once upon a time", 40);
        GenerateResponse r = f.blocking().generate(greedy("Once upon a time", 40));
        assertArrayEquals(expected.tokenIds(), ids(r.getTokenIdsList()));
        assertEquals(expected.text(), r.getText());
        assertEquals(expected.finishReason().name(), r.getFinishReason().name());
        assertEquals("r-16", r.getRequestId());
        assertEquals(expected.promptIds().length, r.getUsage().getPromptTokens());
        assertEquals(expected.tokenIds().length, r.getUsage().getCompletionTokens());
        assertTrue(r.getTimings().getTotalSeconds() >= r.getTimings().getTimeToFirstTokenSeconds());
        assertTrue(r.getTimings().getTimeToFirstTokenSeconds() >= r.getTimings().getQueueSeconds());
    }

    @Test
    void streamingDeliversPiecesAndEndsWithFinishReasonAndUsage() {
        Generator.Result expected = alone("fun main() {", 50);
        Iterator<GenerateStreamResponse> it = f.blocking().generateStream(greedy("fun main() {", 50));
        StringBuilder text = new StringBuilder();
        List<Integer> ids = new ArrayList<>();
        List<GenerateStreamResponse> messages = new ArrayList<>();
        it.forEachRemaining(messages::add);
        for (GenerateStreamResponse m : messages) {
            text.append(m.getText());
            ids.addAll(m.getTokenIdsList());
        }
        assertTrue(messages.size() > 5, "one message per piece of text, got " + messages.size());
        GenerateStreamResponse last = messages.getLast();
        assertEquals(expected.finishReason().name(), last.getFinishReason().name());
        assertEquals(expected.tokenIds().length, last.getUsage().getCompletionTokens());
        for (GenerateStreamResponse m : messages.subList(0, messages.size() - 1)) {
            assertEquals(FinishReason.FINISH_REASON_UNSPECIFIED, m.getFinishReason());
        }
        assertEquals(expected.text(), text.toString());
        assertArrayEquals(expected.tokenIds(), ids(ids));
    }

    @Test
    void logprobsAreLogSoftmaxOfTheChosenAndTopTokens() {
        GenerateResponse r = f.blocking().generate(greedy("The cat", 5).toBuilder().setLogprobs(3).build());
        assertEquals(r.getTokenIdsCount(), r.getLogprobsCount());
        for (int i = 0; i < r.getLogprobsCount(); i++) {
            var lp = r.getLogprobs(i);
            assertEquals(r.getTokenIds(i), lp.getTokenId());
            assertEquals(3, lp.getTopCount());
            assertEquals(lp.getTokenId(), lp.getTop(0).getTokenId(), "greedy picks the most likely token");
            assertTrue(lp.getLogprob() <= 0f && lp.getTop(0).getLogprob() >= lp.getTop(1).getLogprob());
        }
    }

    @Test
    void sixteenConcurrentGreedyRequestsGiveWhatEachGivesAlone() throws Exception {
        String[] prompts = {"The cat", "Once upon a time", "fun main() {", "val x =", "class Foo", "import kotlin", "/**",
            "if (a > b)", "The quick brown fox", "data class", "return", "for (i in 0 until n)", "println(", "// TODO",
            "when (x) {", "A"};
        List<CompletableFuture<GenerateResponse>> calls = new ArrayList<>();
        for (String p : prompts) {
            CompletableFuture<GenerateResponse> done = new CompletableFuture<>();
            f.async().generate(greedy(p, 60), observer(done));
            calls.add(done);
        }
        for (int i = 0; i < prompts.length; i++) {
            GenerateResponse r = calls.get(i).get(60, TimeUnit.SECONDS);
            Generator.Result expected = alone(prompts[i], 60);
            assertArrayEquals(expected.tokenIds(), ids(r.getTokenIdsList()), prompts[i]);
            assertEquals(expected.text(), r.getText(), prompts[i]);
        }
    }

    static <T> StreamObserver<T> observer(CompletableFuture<T> done) {
        return new StreamObserver<>() {
            @Override
            public void onNext(T value) {
                done.complete(value);
            }

            @Override
            public void onError(Throwable t) {
                done.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {}
        };
    }

    @Test
    void tokenizeAndModelInfo() {
        TokenizeResponse t = f.blocking().tokenize(TokenizeRequest.newBuilder().setText("Once upon a time").build());
        assertArrayEquals(f.tokenizer.encode("Once upon a time"), ids(t.getTokenIdsList()));
        assertEquals(t.getTokenIdsCount(), t.getTokensCount());
        assertEquals(f.tokenizer.token(t.getTokenIds(0)), t.getTokens(0));

        ModelInfo info = f.blocking().getModelInfo(GetModelInfoRequest.getDefaultInstance());
        assertEquals("kdoc-llama-5m", info.getModelId());
        assertEquals("llama", info.getFamily());
        assertEquals("bf16", info.getDtype());
        assertEquals(128, info.getContextLength());
        assertEquals(4096, info.getVocabSize());
        assertEquals("cpu", info.getDevice());
        assertEquals(f.model.weightBytes(), info.getWeightBytes());
        assertEquals(f.model.denseEquivalentBytes(), info.getDenseEquivalentBytes());
        assertTrue(info.getParameters() > 4_000_000 && info.getParameters() < 8_000_000, "parameters " + info.getParameters());
        assertTrue(info.getSparsity() >= 0 && info.getSparsity() < 0.05, "a dense model: " + info.getSparsity());
    }

    @Test
    void healthIsServingAndReflectionListsTheService() throws Exception {
        var health = HealthGrpc.newBlockingStub(f.channel).withDeadlineAfter(10, TimeUnit.SECONDS);
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
        assertEquals(HealthCheckResponse.ServingStatus.SERVING,
                health.check(HealthCheckRequest.newBuilder().setService("sparseserve.v1.TextGeneration").build()).getStatus());

        CompletableFuture<ServerReflectionResponse> answer = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> requests = ServerReflectionGrpc.newStub(f.channel)
                .withDeadlineAfter(10, TimeUnit.SECONDS).serverReflectionInfo(observer(answer));
        requests.onNext(ServerReflectionRequest.newBuilder().setListServices("*").build());
        List<String> services = answer.get(10, TimeUnit.SECONDS).getListServicesResponse().getServiceList().stream()
                .map(ServiceResponse::getName).toList();
        requests.onCompleted();
        assertTrue(services.contains("sparseserve.v1.TextGeneration"), services.toString());
        assertTrue(services.contains("grpc.health.v1.Health"), services.toString());
    }

    @Test
    void metricsShowEveryMeterWithPlausibleValues() throws Exception {
        f.blocking().generate(greedy("Once upon a time", 20));
        f.blocking().generateStream(greedy("The cat", 20)).forEachRemaining(m -> {});
        HttpResponse<String> r = f.get("/metrics");
        assertEquals(200, r.statusCode());
        assertTrue(r.headers().firstValue("content-type").orElse("").startsWith("text/plain"));
        String body = r.body();
        for (String name : List.of("sparseserve_time_to_first_token_seconds_bucket", "sparseserve_inter_token_latency_seconds_bucket",
                "sparseserve_e2e_request_latency_seconds_bucket", "sparseserve_request_queue_time_seconds_bucket",
                "sparseserve_batch_size_bucket", "sparseserve_batch_tokens_bucket", "sparseserve_step_duration_seconds_bucket",
                "jvm_memory_used_bytes", "jvm_gc_", "vertx_http_server_requests_total")) {
            assertTrue(body.contains(name), "missing " + name);
        }
        assertTrue(f.metric("sparseserve_time_to_first_token_seconds_count") >= 2);
        assertTrue(f.metric("sparseserve_inter_token_latency_seconds_count") >= 19 * 2);
        assertTrue(f.metric("sparseserve_e2e_request_latency_seconds_count") >= 2);
        assertTrue(f.metric("sparseserve_request_queue_time_seconds_count") >= 2);
        double ttftMax = f.metric("sparseserve_time_to_first_token_seconds_max");
        assertTrue(ttftMax > 0 && ttftMax < 30, "ttft max " + ttftMax);
        assertTrue(f.metric("sparseserve_batch_size_count") > 0);
        assertTrue(f.metric("sparseserve_requests_total{finish_reason=\"length\",status=\"ok\"}") >= 2);
        assertTrue(f.metric("sparseserve_prompt_tokens_total") >= 2);
        assertTrue(f.metric("sparseserve_generation_tokens_total") >= 40);
        assertEquals(0, f.metric("sparseserve_requests_running"));
        assertEquals(0, f.metric("sparseserve_requests_waiting"));
        assertEquals(0, f.metric("sparseserve_kv_cache_usage_ratio"));
        assertEquals(f.model.weightBytes(), f.metric("sparseserve_model_weight_bytes{kind=\"actual\"}"));
        assertEquals(f.model.denseEquivalentBytes(), f.metric("sparseserve_model_weight_bytes{kind=\"dense_equivalent\"}"));
        double rss = f.metric("sparseserve_process_resident_memory_bytes");
        assertTrue(rss > f.model.weightBytes() && rss < 64e9, "rss " + rss);
        assertTrue(f.metric("sparseserve_kv_cache_capacity_bytes") > 0);
        // The runner's memory by kind: the CPU runner's weights are the model's, its KV blocks the engine's capacity.
        String cpu = "sparseserve_device_memory_used_bytes{device=\"cpu\",kind=";
        assertEquals(f.model.weightBytes(), f.metric(cpu + "\"weights\"}"));
        assertEquals(f.engine.kvCacheBytes(), f.metric(cpu + "\"kv\"}"));
        assertTrue(f.metric(cpu + "\"workspace\"}") > 0);
        assertTrue(f.metric("sparseserve_device_memory_total_bytes{device=\"cpu\"}") > f.model.weightBytes());
    }

    @Test
    void httpHealthReadinessAndOpenAiCompletions() throws Exception {
        assertEquals(200, f.get("/healthz").statusCode());
        assertEquals(200, f.get("/readyz").statusCode());
        JsonObject models = new JsonObject(f.get("/v1/models").body());
        assertEquals("kdoc-llama-5m", models.getJsonArray("data").getJsonObject(0).getString("id"));

        Generator.Result expected = alone("Once upon a time", 30);
        HttpResponse<String> unary = f.post("/v1/completions",
                "{\"model\":\"kdoc-llama-5m\",\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"temperature\":0}");
        assertEquals(200, unary.statusCode(), unary.body());
        JsonObject u = new JsonObject(unary.body());
        assertEquals(expected.text(), u.getJsonArray("choices").getJsonObject(0).getString("text"));
        assertEquals(expected.tokenIds().length, u.getJsonObject("usage").getInteger("completion_tokens"));

        HttpResponse<String> sse = f.post("/v1/completions",
                "{\"prompt\":\"Once upon a time\",\"max_tokens\":30,\"temperature\":0,\"stream\":true}");
        assertEquals(200, sse.statusCode());
        assertTrue(sse.headers().firstValue("content-type").orElse("").startsWith("text/event-stream"));
        StringBuilder text = new StringBuilder();
        List<String> events = sse.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
        assertEquals("[DONE]", events.getLast());
        String finish = null;
        for (String e : events.subList(0, events.size() - 1)) {
            JsonObject choice = new JsonObject(e).getJsonArray("choices").getJsonObject(0);
            text.append(choice.getString("text"));
            if (choice.getString("finish_reason") != null) finish = choice.getString("finish_reason");
        }
        assertTrue(events.size() > 3, "streamed in pieces");
        assertEquals(expected.text(), text.toString());
        assertEquals(expected.finishReason() == Generator.FinishReason.LENGTH ? "length" : "stop", finish);

        HttpResponse<String> bad = f.post("/v1/completions", "{\"prompt\":\"x\",\"temperature\":-1}");
        assertEquals(400, bad.statusCode());
        assertTrue(new JsonObject(bad.body()).getJsonObject("error").getString("message").startsWith("temperature"), bad.body());
    }
}
