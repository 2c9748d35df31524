package io.sparseserve.server;

import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.vertx.core.Vertx;
import io.vertx.core.VertxOptions;
import io.vertx.core.http.Http2Settings;
import io.vertx.core.http.HttpServer;
import io.vertx.core.http.HttpServerOptions;
import io.vertx.core.http.HttpServerRequest;
import io.vertx.core.json.JsonObject;
import io.vertx.core.net.PemKeyCertOptions;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.grpc.reflection.ReflectionService;
import io.vertx.grpc.server.GrpcServer;
import io.vertx.grpc.server.GrpcServerOptions;
import io.vertx.micrometer.MetricsDomain;
import io.vertx.micrometer.MicrometerMetricsFactory;
import io.vertx.micrometer.MicrometerMetricsOptions;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One port for everything: gRPC (content type {@code application/grpc...}: TextGeneration, grpc.health.v1,
 * grpc.reflection.v1) and plain HTTP ({@code /metrics}, {@code /healthz}, {@code /readyz}, {@code /v1/completions},
 * {@code /v1/chat/completions}, {@code /v1/models}). HTTP/2 without TLS (h2c, prior knowledge) serves gRPC clients; HTTP/1.1 serves the rest.
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
    public record Options(String host, int port, String modelId, String device, ServerSecurity security,
            ServerLimits limits, Consumer<DeviceFailure> onDeviceFailure) {
        /** Open and plain, with the default limits. */
        public Options(String host, int port, String modelId, String device) {
            this(host, port, modelId, device, ServerSecurity.NONE, ServerLimits.defaults());
        }

        /** With nothing done after a device failure beyond turning NOT_SERVING (tests; serve ends the process). */
        public Options(String host, int port, String modelId, String device, ServerSecurity security, ServerLimits limits) {
            this(host, port, modelId, device, security, limits, failure -> {});
        }

        /** The same options with {@code exit} called after a device failure, once health is NOT_SERVING. */
        public Options onDeviceFailure(Consumer<DeviceFailure> exit) {
            return new Options(host, port, modelId, device, security, limits, exit);
        }
    }

    private final Vertx vertx;
    private final Serving serving;
    private final HttpServer http;
    private final GrpcServer grpc;
    private final HealthEndpoint health;
    private final boolean tls;
    private final ConnectionGate connections;
    private final RateLimitedLog bodyLimitLog = new RateLimitedLog(log, java.time.Duration.ofMinutes(1));
    private final String host;
    private final int requestedPort;
    private int port = -1;

    public SparseServer(Engine engine, ServingMetrics metrics, Options options) {
        ServerLimits limits = options.limits();
        this.connections = new ConnectionGate(limits.maxConnections(), limits.connectionsPerClient());
        this.vertx = Vertx.builder()
                // Counts and bounds connections as they are accepted, before any byte (see ConnectionGate).
                .withTransport(new GatedTransport(connections))
                .with(new VertxOptions().setMetricsOptions(new MicrometerMetricsOptions().setEnabled(true)
                        .addDisabledMetricsCategory(MetricsDomain.EVENT_BUS)
                        .addDisabledMetricsCategory(MetricsDomain.NAMED_POOLS)
                        .addDisabledMetricsCategory(MetricsDomain.VERTICLES)))
                .withMetrics(new MicrometerMetricsFactory(metrics.registry()))
                .build();
        this.host = options.host();
        this.requestedPort = options.port();
        this.serving = new Serving(engine, metrics, options.modelId(), options.device(), options.limits());
        metrics.bindEngine(engine);
        metrics.bindModel(engine.model());
        metrics.bindDevice(engine.runner());

        this.grpc = GrpcServer.server(vertx, new GrpcServerOptions().setMaxMessageSize(MAX_MESSAGE_BYTES));
        grpc.addService(new TextGenerationEndpoint(vertx, serving).service());
        this.health = new HealthEndpoint(vertx, this.serving, grpc);
        grpc.addService(health.service());
        grpc.addService(ReflectionService.v1());

        Consumer<DeviceFailure> exit = options.onDeviceFailure();
        engine.onDeviceFailure(failure -> {
            // A sticky device error: nothing can run again in this process. NOT_SERVING first (health, readyz,
            // healthz, Watch streams), new calls refused, then the exit path (serve ends the process non-zero).
            serving.deviceFailed(failure.getMessage());
            health.drainingStarted();
            log.error("device failure: health is NOT_SERVING; the process must restart: {}", failure.getMessage());
            exit.accept(failure);
        });

        ServerSecurity security = options.security();
        ApiKeyAuth key = security.apiKey();
        Router router = Router.router(vertx);
        if (key != null) {
            router.route("/v1/*").order(-1).handler(rc -> requireKey(rc, key));
            if (security.metricsAuth()) router.route("/metrics").order(-1).handler(rc -> requireKey(rc, key));
        }
        router.get("/metrics").handler(rc -> rc.response()
                .putHeader("content-type", "text/plain; version=0.0.4; charset=utf-8")
                .end(metrics.scrape()));
        // Liveness fails only when the device is lost (a restart is the cure); readiness also while draining.
        router.get("/healthz").handler(rc -> {
            String failure = this.serving.failure();
            rc.response().setStatusCode(failure == null ? 200 : 503).putHeader("content-type", "text/plain")
                    .end(failure == null ? "ok\n" : "device failed: " + failure + "\n");
        });
        router.get("/readyz").handler(rc -> {
            boolean ready = !this.serving.draining();
            rc.response().setStatusCode(ready ? 200 : 503).putHeader("content-type", "text/plain")
                    .end(ready ? "ready\n" : this.serving.failure() != null ? "device failed\n" : "draining\n");
        });
        new OpenAiRoutes(this.serving).mount(router);
        new ChatRoutes(this.serving).mount(router);
        // Vert.x logs "Unhandled exception in router" at ERROR for a failure whose status has no error handler, and
        // BodyHandler fails a body over its limit with 413: one ERROR line per oversized request (found by the
        // adversarial suite's 10 MB bodies). A client-caused failure: one WARN a minute and an OpenAI-shaped answer.
        router.errorHandler(413, rc -> {
            bodyLimitLog.warn("refused HTTP request bodies over the limit (413), last on {} {}", rc.request().method(), rc.request().path());
            if (!rc.response().ended() && !rc.response().closed()) {
                rc.response().setStatusCode(413).putHeader("content-type", "application/json")
                        .putHeader("connection", "close")
                        .end(new JsonObject().put("error", new JsonObject()
                                .put("message", "request body too large").put("type", "invalid_request_error")
                                .putNull("param").putNull("code")).encode());
            }
        });

        HttpServerOptions httpOptions = new HttpServerOptions().setHost(options.host()).setPort(options.port())
                .setHttp2ClearTextEnabled(true)
                // A connection that sends and receives nothing for this long is closed (half-open and idle floods).
                .setIdleTimeout((int) Math.max(1, limits.idleTimeout().toSeconds())).setIdleTimeoutUnit(TimeUnit.SECONDS)
                // Streams one HTTP/2 connection may have open at once (announced in SETTINGS; more are refused).
                .setInitialSettings(new Http2Settings().setMaxConcurrentStreams(limits.maxStreamsPerConnection()));
        if (security.tls()) {
            // gRPC over TLS needs HTTP/2 chosen by ALPN; HTTP/1.1 clients get HTTPS on the same port.
            httpOptions.setSsl(true).setUseAlpn(true).setKeyCertOptions(new PemKeyCertOptions()
                    .setCertPath(security.tlsCert().toString()).setKeyPath(security.tlsKey().toString()));
        }
        this.tls = security.tls();
        this.http = vertx.createHttpServer(httpOptions);
        http.requestHandler(req -> {
            if (isGrpc(req)) {
                if (key != null && !openGrpc(req.path()) && !key.accepts(req.getHeader("authorization"))) {
                    refuseGrpc(req);
                    return;
                }
                grpc.handle(req);
            } else {
                router.handle(req);
            }
        });
    }

    /** Health stays open for load balancers; every other service (ours, reflection) needs the key. */
    private static boolean openGrpc(String path) {
        return path != null && path.startsWith("/grpc.health.v1.Health/");
    }

    /** A trailers-only gRPC answer: UNAUTHENTICATED, without reading the request. */
    private static void refuseGrpc(HttpServerRequest req) {
        req.response().setStatusCode(200).putHeader("content-type", "application/grpc")
                .putHeader("grpc-status", "16")
                .putHeader("grpc-message", "missing or wrong API key (send authorization: Bearer KEY)").end();
    }

    private static void requireKey(RoutingContext rc, ApiKeyAuth key) {
        if (key.accepts(rc.request().getHeader("authorization"))) {
            rc.next();
            return;
        }
        rc.response().setStatusCode(401).putHeader("www-authenticate", "Bearer").putHeader("content-type", "application/json")
                .end(new JsonObject().put("error", new JsonObject()
                        .put("message", "missing or wrong API key (send authorization: Bearer KEY)")
                        .put("type", "invalid_request_error").put("param", null).put("code", "invalid_api_key")).encode());
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
        } catch (java.util.concurrent.ExecutionException e) {
            // A port in use or an address that is not ours is the operator's input: one line, no stack trace.
            if (e.getCause() instanceof java.net.SocketException se) {
                throw new io.sparseserve.model.InvalidInputException("cannot listen on " + host + ":" + requestedPort
                        + ": " + se.getMessage() + " (--host/--port)");
            }
            if (tls) {
                throw new io.sparseserve.model.InvalidInputException("cannot use the TLS certificate and key (--tls-cert, "
                        + "--tls-key; PEM expected): " + e.getCause().getMessage());
            }
            throw new IllegalStateException("cannot listen on " + host + ":" + requestedPort + ": " + e.getCause(), e);
        } catch (Exception e) {
            throw new IllegalStateException("cannot listen on " + host + ":" + requestedPort + ": " + e, e);
        }
        return port;
    }

    public int port() {
        return port;
    }

    /** TCP connections open now, counted from their accept (whether or not they ever sent a byte). */
    public int openConnections() {
        return connections.open();
    }

    /** Connections closed at once since start: --max-connections, or --max-connections-per-client from one address. */
    public long refusedConnections() {
        return connections.refused();
    }

    /** Distinct client addresses with open connections. */
    public int connectedClients() {
        return connections.clients();
    }

    /** The access log (tests listen to its lines). */
    AccessLog accessLog() {
        return serving.accessLog();
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
        serving.tokenizers().close();
    }
}
