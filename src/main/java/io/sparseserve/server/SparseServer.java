package io.sparseserve.server;

import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.ext.web.Router;
import io.vertx.grpc.reflection.ReflectionService;
import io.vertx.grpc.server.GrpcServer;
import io.vertx.grpc.server.GrpcServerOptions;
import io.vertx.micrometer.MetricsDomain;
import io.vertx.micrometer.MicrometerMetricsFactory;
import io.vertx.micrometer.MicrometerMetricsOptions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One port for everything: gRPC (content type {@code application/grpc...}: TextGeneration, grpc.health.v1,
 * grpc.reflection.v1) and plain HTTP ({@code /metrics}, {@code /healthz}, {@code /readyz}, {@code /v1/completions},
 * {@code /v1/models}). HTTP/2 without TLS (h2c, prior knowledge) serves gRPC clients; HTTP/1.1 serves the rest.
 */
public final class SparseServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SparseServer.class);
    /** The largest gRPC message accepted; larger prompts are refused earlier by size (see ProtoRequests). */
    static final long MAX_MESSAGE_BYTES = 16L << 20;

    /**
     * @param host the address to listen on (127.0.0.1 by default; 0.0.0.0 for every interface)
     * @param port 0 picks a free port
     * @param modelId the name clients see (the model folder's name)
     * @param device where the model runs, as reported by GetModelInfo
     */
    public record Options(String host, int port, String modelId, String device) {}

    private final Vertx vertx;
    private final Serving serving;
    private final HttpServer http;
    private final GrpcServer grpc;
    private final HealthEndpoint health;
    private int port = -1;

    public SparseServer(Engine engine, ServingMetrics metrics, Options options) {
        this.vertx = Vertx.builder()
                .with(new VertxOptions().setMetricsOptions(new MicrometerMetricsOptions().setEnabled(true)
                        .addDisabledMetricsCategory(MetricsDomain.EVENT_BUS)
                        .addDisabledMetricsCategory(MetricsDomain.NAMED_POOLS)
                        .addDisabledMetricsCategory(MetricsDomain.VERTICLES)))
                .withMetrics(new MicrometerMetricsFactory(metrics.registry()))
                .build();
        this.serving = new Serving(engine, metrics, options.modelId(), options.device());
        metrics.bindEngine(engine);
        metrics.bindModel(engine.model());
        metrics.bindDevice(engine.runner());

        this.grpc = GrpcServer.server(vertx, new GrpcServerOptions().setMaxMessageSize(MAX_MESSAGE_BYTES));
        grpc.addService(new TextGenerationEndpoint(vertx, serving).service());
        this.health = new HealthEndpoint(vertx, this.serving, grpc);
        grpc.addService(health.service());
        grpc.addService(ReflectionService.v1());

        Router router = Router.router(vertx);
        router.get("/metrics").handler(rc -> rc.response()
                .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .end(metrics.scrape()));
        router.get("/healthz").handler(rc -> rc.response().putHeader("content-type", "text/plain").end("ok\n"));
        router.get("/readyz").handler(rc -> {
            boolean ready = !this.serving.draining();
            rc.response().setStatusCode(ready ? 200 : 503).putHeader("content-type", "text/plain")
                    .end(ready ? "ready\n" : "draining\n");
        });
        new OpenAiRoutes(this.serving).mount(router);

        this.http = vertx.createHttpServer(new HttpServerOptions().setHost(options.host()).setPort(options.port())
                .setHttp2ClearTextEnabled(true));
        http.requestHandler(req -> {
            if (isGrpc(req)) grpc.handle(req);
            else router.handle(req);
        });
    }

    /** gRPC by content type prefix, so application/grpc+proto and others reach the gRPC server too. */
    private static boolean isGrpc(HttpServerRequest req) {
        String type = req.getHeader("content-type");
        return type != null && type.regionMatches(true, 0, "application/grpc", 0, "application/grpc".length());
    }

    /** Starts listening; returns the port (the free one picked for port 0). */
    public int start() {
        try {
            port = http.listen().toCompletionStage().toCompletableFuture().get(30, TimeUnit.SECONDS).actualPort();
        } catch (Exception e) {
            throw new IllegalStateException("cannot listen: " + (e.getCause() != null ? e.getCause() : e), e);
        }
        return port;
    }

    public int port() {
        return port;
    }

    public boolean draining() {
        return serving.draining();
    }

    /**
     * Graceful shutdown: health turns NOT_SERVING and new calls are refused (UNAVAILABLE) while the running and
     * waiting sequences finish, for at most {@code timeout}; whatever is left then is cancelled. Returns whether
     * everything finished in time.
     */
    public boolean drain(Duration timeout) throws InterruptedException {
        serving.startDraining();
        health.drainingStarted();
        log.info("draining: refusing new calls, waiting up to {} s for {} running and {} waiting requests",
                timeout.toSeconds(), serving.engine().running(), serving.engine().waiting());
        boolean done = serving.engine().awaitIdle(timeout);
        if (!done) log.warn("drain timeout: cancelling {} unfinished requests", serving.engine().running() + serving.engine().waiting());
        return done;
    }

    /** Stops the engine (failing what is left with UNAVAILABLE), lets responses flush, and closes the port. */
    @Override
    public void close() {
        serving.startDraining();
        serving.engine().close();
        try {
            http.shutdown(5, TimeUnit.SECONDS).toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.warn("HTTP server did not shut down cleanly: {}", e.toString());
        }
        try {
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        } catch (Exception e) {
            log.warn("Vert.x did not close cleanly: {}", e.toString());
        }
    }
}
