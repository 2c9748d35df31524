package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.AbstractStub;
import io.grpc.stub.MetadataUtils;
import io.grpc.stub.StreamObserver;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GetModelInfoRequest;
import io.sparseserve.api.v1.TextGenerationGrpc;
import io.sparseserve.api.v1.TokenizeRequest;
import io.sparseserve.engine.Engine;
import io.sparseserve.model.InvalidInputException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * With an API key every TextGeneration method, reflection and /v1 route refuses a missing or wrong key, health stays
 * open; everything here runs over TLS with clients that trust the test certificate (grpc-java, the JDK HTTP client).
 */
class ApiKeyAndTlsTest {
    static final String KEY = "test-key-0123456789";
    static ServerFixture f;
    static HttpClient https;

    @TempDir static Path chatModel;

    @BeforeAll
    static void start() {
        // The bundled model with a chat template, so /v1/chat/completions answers 200 with the key.
        f = new ServerFixture(ChatModels.withTemplate(TestData.bundledModel(), chatModel.resolve("chat")), Engine.Config.defaults(),
                new ServerSecurity(new ApiKeyAuth(KEY), TlsClients.CERT, TlsClients.KEY, false), ServerLimits.defaults());
        https = HttpClient.newBuilder().sslContext(TlsClients.sslContext()).connectTimeout(Duration.ofSeconds(5)).build();
    }

    @AfterAll
    static void stop() throws Exception {
        f.close();
    }

    static <S extends AbstractStub<S>> S keyed(S stub, String key) {
        if (key == null) return stub.withDeadlineAfter(60, TimeUnit.SECONDS);
        Metadata md = new Metadata();
        md.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        return stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(md)).withDeadlineAfter(60, TimeUnit.SECONDS);
    }

    @Test
    void everyGrpcMethodRefusesAMissingOrWrongKey() {
        for (String key : new String[] {null, "wrong", KEY + "x"}) {
            var stub = keyed(TextGenerationGrpc.newBlockingStub(f.channel), key);
            Map<String, Runnable> calls = Map.of(
                    "Generate", () -> stub.generate(GenerateRequest.newBuilder().setPrompt("The").setMaxNewTokens(2).build()),
                    "GenerateStream", () -> stub.generateStream(GenerateRequest.newBuilder().setPrompt("The").setMaxNewTokens(2).build()).next(),
                    "Tokenize", () -> stub.tokenize(TokenizeRequest.newBuilder().setText("The").build()),
                    "GetModelInfo", () -> stub.getModelInfo(GetModelInfoRequest.getDefaultInstance()));
            calls.forEach((name, call) -> {
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class, call::run, name);
                assertEquals(Status.Code.UNAUTHENTICATED, e.getStatus().getCode(), name + " with key " + key);
            });
        }
        var ok = keyed(TextGenerationGrpc.newBlockingStub(f.channel), KEY);
        assertEquals(2, ok.generate(GenerateRequest.newBuilder().setPrompt("The").setMaxNewTokens(2).setIgnoreEos(true).build())
                .getTokenIdsCount());
        assertTrue(ok.getModelInfo(GetModelInfoRequest.getDefaultInstance()).getContextLength() > 0);
    }

    @Test
    void reflectionNeedsTheKeyHealthDoesNot() throws Exception {
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, keyed(HealthGrpc.newBlockingStub(f.channel), null)
                .check(HealthCheckRequest.getDefaultInstance()).getStatus());
        CompletableFuture<Status> done = new CompletableFuture<>();
        StreamObserver<ServerReflectionRequest> req = keyed(ServerReflectionGrpc.newStub(f.channel), null)
                .serverReflectionInfo(new StreamObserver<ServerReflectionResponse>() {
                    public void onNext(ServerReflectionResponse r) {}

                    public void onError(Throwable t) {
                        done.complete(Status.fromThrowable(t));
                    }

                    public void onCompleted() {
                        done.complete(Status.OK);
                    }
                });
        req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        req.onCompleted();
        assertEquals(Status.Code.UNAUTHENTICATED, done.get(30, TimeUnit.SECONDS).getCode());
    }

    @Test
    void httpRoutesNeedTheKeyOverHttpsHealthAndMetricsDoNot() throws Exception {
        String body = "{\"prompt\": \"The\", \"max_tokens\": 2}";
        String chat = "{\"messages\": [{\"role\": \"user\", \"content\": \"The\"}], \"max_tokens\": 2}";
        for (String key : new String[] {null, "wrong"}) {
            assertEquals(401, post("/v1/completions", body, key).statusCode());
            HttpResponse<String> refused = post("/v1/chat/completions", chat, key);
            assertEquals(401, refused.statusCode());
            assertTrue(refused.body().contains("invalid_api_key"), refused.body());
            HttpResponse<String> models = get("/v1/models", key);
            assertEquals(401, models.statusCode());
            assertTrue(models.body().contains("invalid_api_key"), models.body());
        }
        assertEquals(200, post("/v1/completions", body, KEY).statusCode());
        HttpResponse<String> answered = post("/v1/chat/completions", chat, KEY);
        assertEquals(200, answered.statusCode(), answered.body());
        assertTrue(answered.body().contains("\"chat.completion\""), answered.body());
        assertEquals(200, get("/v1/models", KEY).statusCode());
        assertEquals(200, get("/healthz", null).statusCode());
        assertEquals(200, get("/readyz", null).statusCode());
        assertEquals(200, get("/metrics", null).statusCode());
    }

    @Test
    void metricsAuthKeysMetricsToo() throws Exception {
        try (ServerFixture g = new ServerFixture(TestData.bundledModel(), new Engine.Config(64, 4, 16, 0, 16),
                new ServerSecurity(new ApiKeyAuth(KEY), null, null, true), ServerLimits.defaults())) {
            HttpClient plain = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            var req = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + g.port + "/metrics")).timeout(Duration.ofSeconds(30));
            assertEquals(401, plain.send(req.GET().build(), HttpResponse.BodyHandlers.ofString()).statusCode());
            assertEquals(200, plain.send(req.header("authorization", "Bearer " + KEY).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode());
            assertEquals(200, plain.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + g.port + "/healthz"))
                    .GET().build(), HttpResponse.BodyHandlers.ofString()).statusCode());
        }
    }

    @Test
    void keysComeFromTheOptionTheFileOrTheEnvironment(@TempDir Path tmp) throws Exception {
        assertNull(ApiKeyAuth.resolve(null, null, Map.of()));
        assertTrue(ApiKeyAuth.resolve("abc", null, Map.of()).accepts("Bearer abc"));
        Path file = Files.writeString(tmp.resolve("key"), "from-file\n");
        assertTrue(ApiKeyAuth.resolve(null, file, Map.of()).accepts("Bearer from-file"));
        ApiKeyAuth env = ApiKeyAuth.resolve(null, null, Map.of(ApiKeyAuth.ENV, "from-env"));
        assertNotNull(env);
        assertTrue(env.accepts("bearer from-env"));
        assertTrue(!env.accepts("Bearer from-en") && !env.accepts("from-env") && !env.accepts(null));
        assertThrows(InvalidInputException.class, () -> ApiKeyAuth.resolve(null, tmp.resolve("missing"), Map.of()));
        assertThrows(InvalidInputException.class, () -> ApiKeyAuth.resolve("a", file, Map.of()));
    }

    private static HttpResponse<String> get(String path, String key) throws Exception {
        return https.send(request(path, key).GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    private static HttpResponse<String> post(String path, String body, String key) throws Exception {
        return https.send(request(path, key).header("content-type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
    }

    private static HttpRequest.Builder request(String path, String key) {
        var b = HttpRequest.newBuilder(URI.create("https://127.0.0.1:" + f.port + path)).timeout(Duration.ofSeconds(30));
        return key == null ? b : b.header("authorization", "Bearer " + key);
    }
}
