package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.CallOptions;
import io.grpc.Channel;
import io.grpc.ClientCall;
import io.grpc.ClientInterceptor;
import io.grpc.ClientInterceptors;
import io.grpc.ForwardingClientCall;
import io.grpc.ForwardingClientCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.stub.MetadataUtils;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.TextGenerationGrpc;
import io.sparseserve.engine.Engine;
import io.vertx.core.json.JsonObject;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** An absent seed is a fresh random one, reported back; every request leaves one access-log line with its id. */
class SeedAndAccessLogTest {
    static ServerFixture f;
    static final List<String> lines = new CopyOnWriteArrayList<>();
    static final Metadata.Key<String> REQUEST_ID = Metadata.Key.of("x-request-id", Metadata.ASCII_STRING_MARSHALLER);

    @TempDir static Path tmp;

    @BeforeAll
    static void start() {
        // The bundled model with a chat template, so /v1/chat/completions is served too.
        f = new ServerFixture(ChatModels.withTemplate(TestData.bundledModel(), tmp.resolve("chat")), Engine.Config.defaults());
        f.server.accessLog().addListener(lines::add);
    }

    @AfterAll
    static void stop() throws Exception {
        f.close();
    }

    static GenerateRequest.Builder sampled() {
        return GenerateRequest.newBuilder().setPrompt("The kernel").setMaxNewTokens(32).setIgnoreEos(true)
                .setTemperature(1.0f);
    }

    @Test
    void identicalSampledRequestsWithoutASeedDifferAndTheSeedRepeatsThem() {
        GenerateResponse a = f.blocking().generate(sampled().build());
        GenerateResponse b = f.blocking().generate(sampled().build());
        assertNotEquals(a.getSeed(), b.getSeed());
        assertNotEquals(a.getTokenIdsList(), b.getTokenIdsList(), "two unseeded sampled requests gave the same tokens");
        GenerateResponse again = f.blocking().generate(sampled().setSeed(a.getSeed()).build());
        assertEquals(a.getTokenIdsList(), again.getTokenIdsList());
        assertEquals(a.getSeed(), again.getSeed());
    }

    @Test
    void theStreamsLastMessageCarriesTheSeed() {
        Iterator<GenerateStreamResponse> it = f.blocking().generateStream(sampled().setSeed(42).build());
        GenerateStreamResponse last = null;
        while (it.hasNext()) last = it.next();
        assertEquals(42, last.getSeed());
    }

    @Test
    void httpCompletionsWithoutASeedDifferAndReportTheSeed() throws Exception {
        String body = "{\"prompt\": \"The kernel\", \"max_tokens\": 32, \"ignore_eos\": true, \"temperature\": 1.0}";
        JsonObject a = new JsonObject(f.post("/v1/completions", body).body());
        JsonObject b = new JsonObject(f.post("/v1/completions", body).body());
        assertNotEquals(a.getLong("seed"), b.getLong("seed"));
        assertNotEquals(text(a), text(b));
        String seeded = body.replace("}", ", \"seed\": " + a.getLong("seed") + "}");
        assertEquals(text(a), text(new JsonObject(f.post("/v1/completions", seeded).body())));
    }

    static final String CHAT = "{\"messages\": [{\"role\": \"user\", \"content\": \"The kernel\"}], \"max_tokens\": 32,"
            + " \"ignore_eos\": true, \"temperature\": 1.0}";

    @Test
    void httpChatWithoutASeedDiffersAndReportsTheSeed() throws Exception {
        JsonObject a = new JsonObject(ok(f.post("/v1/chat/completions", CHAT)));
        JsonObject b = new JsonObject(ok(f.post("/v1/chat/completions", CHAT)));
        assertNotEquals(a.getLong("seed"), b.getLong("seed"), a + " / " + b);
        assertNotEquals(content(a), content(b), "two unseeded sampled chat requests gave the same text");
        String seeded = CHAT.replace("}", ", \"seed\": " + a.getLong("seed") + "}");
        JsonObject again = new JsonObject(ok(f.post("/v1/chat/completions", seeded)));
        assertEquals(content(a), content(again));
        assertEquals(a.getLong("seed"), again.getLong("seed"));

        // A stream's last chunk (the one with the finish reason) carries the seed as well.
        String streamed = ok(f.post("/v1/chat/completions", CHAT.replace("}", ", \"stream\": true, \"seed\": 42}")));
        List<JsonObject> finals = streamed.lines().filter(l -> l.startsWith("data: {")).map(l -> new JsonObject(l.substring(6)))
                .filter(c -> c.getJsonArray("choices").getJsonObject(0).getString("finish_reason") != null).toList();
        assertEquals(1, finals.size(), streamed);
        assertEquals(42L, finals.getFirst().getLong("seed"));
    }

    private static String ok(HttpResponse<String> r) {
        assertEquals(200, r.statusCode(), r.body());
        return r.body();
    }

    private static String content(JsonObject chat) {
        return chat.getJsonArray("choices").getJsonObject(0).getJsonObject("message").getString("content");
    }

    @Test
    void httpChatRequestIdIsEchoedAndLoggedOnceWithoutTheMessages() throws Exception {
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        String body = CHAT.replace("The kernel", "Secret chat text").replace("}", ", \"seed\": 11}");
        HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + f.port + "/v1/chat/completions"))
                .timeout(Duration.ofSeconds(60)).header("content-type", "application/json").header("x-request-id", "chat-id-5")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        JsonObject out = new JsonObject(ok(r));
        assertEquals("chat-id-5", r.headers().firstValue("x-request-id").orElseThrow());
        String line = awaitLine("request_id=chat-id-5 ");
        assertTrue(line.contains("method=POST /v1/chat/completions status=200"), line);
        assertTrue(line.contains("prompt_tokens=" + out.getJsonObject("usage").getInteger("prompt_tokens") + " "), line);
        assertTrue(line.contains("output_tokens=32 "), line);
        assertTrue(line.contains("seed=11"), line);
        assertTrue(line.contains("finish=length"), line);
        assertFalse(line.contains("Secret"), line);
        assertEquals(1, lines.stream().filter(l -> l.startsWith("request_id=chat-id-5 ")).count());

        // A refusal has an id and a line too.
        HttpResponse<String> bad = f.post("/v1/chat/completions", "{\"messages\": 3}");
        assertEquals(400, bad.statusCode());
        String badId = bad.headers().firstValue("x-request-id").orElseThrow();
        assertTrue(awaitLine("request_id=" + badId + " ").contains("status=400"));
    }

    private static String text(JsonObject completion) {
        return completion.getJsonArray("choices").getJsonObject(0).getString("text");
    }

    @Test
    void grpcRequestIdIsEchoedAndLoggedOnceWithoutThePrompt() throws Exception {
        AtomicReference<Metadata> headers = new AtomicReference<>();
        Channel channel = ClientInterceptors.intercept(f.channel, capture(headers));
        GenerateResponse r = TextGenerationGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .generate(GenerateRequest.newBuilder().setPrompt("Secret prompt text").setMaxNewTokens(5).setSeed(9).build());
        String id = r.getRequestId();
        assertTrue(id.startsWith("req-"), id);
        assertEquals(id, headers.get().get(REQUEST_ID));
        String line = awaitLine("request_id=" + id + " ");
        assertTrue(line.contains("method=Generate status=OK"), line);
        assertTrue(line.contains("output_tokens=" + r.getTokenIdsCount()), line);
        assertTrue(line.contains("prompt_tokens=" + r.getUsage().getPromptTokens()), line);
        assertTrue(line.contains("seed=9"), line);
        assertTrue(line.matches(".*ttft_ms=[0-9.]+ duration_ms=[0-9.]+ finish=length.*"), line);
        assertFalse(line.contains("Secret"), line);

        // The client's id, sent as metadata, is the one used.
        Metadata sent = new Metadata();
        sent.put(REQUEST_ID, "client-id-7");
        GenerateResponse mine = TextGenerationGrpc.newBlockingStub(f.channel).withDeadlineAfter(60, TimeUnit.SECONDS)
                .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(sent))
                .generate(GenerateRequest.newBuilder().setPrompt("The").setMaxNewTokens(2).build());
        assertEquals("client-id-7", mine.getRequestId());
        awaitLine("request_id=client-id-7 "); // written just after the response
        assertEquals(1, lines.stream().filter(l -> l.startsWith("request_id=client-id-7 ")).count());
    }

    @Test
    void httpRequestIdIsEchoedAndRefusalsAreLoggedToo() throws Exception {
        HttpResponse<String> ok = f.post("/v1/completions", "{\"prompt\": \"The\", \"max_tokens\": 2}");
        String id = ok.headers().firstValue("x-request-id").orElseThrow();
        assertTrue(awaitLine("request_id=" + id + " ").contains("status=200"));
        HttpResponse<String> bad = f.post("/v1/completions", "{\"prompt\": \"The\", \"max_tokens\": -1}");
        assertEquals(400, bad.statusCode());
        String badId = bad.headers().firstValue("x-request-id").orElseThrow();
        assertTrue(awaitLine("request_id=" + badId + " ").contains("status=400"));
    }

    private static String awaitLine(String prefix) {
        ServerFixture.await("an access-log line starting " + prefix, Duration.ofSeconds(10),
                () -> lines.stream().anyMatch(l -> l.startsWith(prefix)));
        return lines.stream().filter(l -> l.startsWith(prefix)).findFirst().orElseThrow();
    }

    private static ClientInterceptor capture(AtomicReference<Metadata> headers) {
        return new ClientInterceptor() {
            @Override
            public <Q, A> ClientCall<Q, A> interceptCall(MethodDescriptor<Q, A> method, CallOptions options, Channel next) {
                return new ForwardingClientCall.SimpleForwardingClientCall<>(next.newCall(method, options)) {
                    @Override
                    public void start(Listener<A> listener, Metadata md) {
                        super.start(new ForwardingClientCallListener.SimpleForwardingClientCallListener<>(listener) {
                            @Override
                            public void onHeaders(Metadata h) {
                                headers.set(h);
                                super.onHeaders(h);
                            }
                        }, md);
                    }
                };
            }
        };
    }
}
