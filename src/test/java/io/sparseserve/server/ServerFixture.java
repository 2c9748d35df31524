package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.TextGenerationGrpc;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.sparseserve.model.Family;
import io.sparseserve.model.Model;
import io.sparseserve.model.SyntheticModel;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** A real server in this JVM on a free port, and grpc-java and HTTP clients for it. */
final class ServerFixture implements AutoCloseable {
    final Model model;
    final Tokenizer tokenizer;
    final Engine engine;
    final SparseServer server;
    final ManagedChannel channel;
    final int port;
    private final ServingMetrics metrics;
    // HTTP/1.1: the JDK client would otherwise try an h2c upgrade, which the gRPC port answers differently.
    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
            .connectTimeout(Duration.ofSeconds(5)).build();

    ServerFixture(Path modelDir, Engine.Config config) {
        this(modelDir, config, modelDir.getFileName().toString());
    }

    /** Serving the model under {@code modelId} (serve's --served-model-name). */
    ServerFixture(Path modelDir, Engine.Config config, String modelId) {
        this(modelDir, config, modelId, ServerSecurity.NONE, ServerLimits.defaults());
    }

    /** With TLS, {@link #channel} trusts the test certificate ({@code src/test/resources/tls}). */
    ServerFixture(Path modelDir, Engine.Config config, ServerSecurity security, ServerLimits limits) {
        this(modelDir, config, modelDir.getFileName().toString(), security, limits);
    }

    private ServerFixture(Path modelDir, Engine.Config config, String modelId, ServerSecurity security, ServerLimits limits) {
        this(modelDir, config, ModelRunners.cpu(), new SparseServer.Options("127.0.0.1", 0, modelId, "cpu", security, limits));
    }

    /** Serving through {@code runners} (e.g. a fault-injecting runner) with {@code options} (its port is ignored: 0). */
    ServerFixture(Path modelDir, Engine.Config config, RunnerFactory runners, SparseServer.Options options) {
        model = Model.load(modelDir);
        tokenizer = Tokenizer.load(modelDir.resolve("tokenizer.json"));
        metrics = new ServingMetrics();
        engine = new Engine(model, tokenizer, runners, config, metrics);
        server = new SparseServer(engine, metrics, new SparseServer.Options("127.0.0.1", 0, options.modelId(), options.device(),
                options.security(), options.limits(), options.onDeviceFailure()));
        ServerSecurity security = options.security();
        port = server.start();
        channel = security.tls() ? TlsClients.channel(port) : ManagedChannelBuilder.forAddress("127.0.0.1", port).usePlaintext().build();
    }

    TextGenerationGrpc.TextGenerationBlockingStub blocking() {
        return TextGenerationGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
    }

    TextGenerationGrpc.TextGenerationStub async() {
        return TextGenerationGrpc.newStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
    }

    HttpResponse<String> get(String path) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(30))
                .GET().build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> post(String path, String json) throws IOException, InterruptedException {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + path)).timeout(Duration.ofSeconds(30))
                .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(json)).build(),
                HttpResponse.BodyHandlers.ofString());
    }

    /** The value of one Prometheus sample line, e.g. {@code metric("sparseserve_requests_running")}. */
    double metric(String nameWithLabels) throws IOException, InterruptedException {
        String body = get("/metrics").body();
        Matcher m = Pattern.compile("(?m)^" + Pattern.quote(nameWithLabels) + " (\\S+)$").matcher(body);
        if (!m.find()) fail("no sample " + nameWithLabels + " in /metrics");
        return Double.parseDouble(m.group(1));
    }

    /** Waits for a condition that another thread makes true, up to a bound (no fixed sleeps). */
    static void await(String what, Duration timeout, BooleanSupplier condition) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) fail("timed out waiting for " + what);
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(5));
        }
    }

    /**
     * A small random-weight Llama with a long context (4096 positions) and the bundled tokenizer: its streams run long
     * enough (seconds) to be cancelled, queued behind or drained while they run.
     */
    static Path longContextModel(Path dir) throws IOException {
        SyntheticModel.write(new SyntheticModel.Shape(Family.LLAMA, 64, 2, 4, 4, 128, 4096, 4096), DType.F32, 3,
                TestData.bundledModel().resolve("tokenizer.json"), dir);
        assertTrue(dir.resolve("config.json").toFile().isFile());
        return dir;
    }

    @Override
    public void close() throws InterruptedException {
        channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
        server.close();
        metrics.close();
        tokenizer.close();
        model.close();
    }
}
