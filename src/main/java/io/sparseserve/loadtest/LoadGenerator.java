package io.sparseserve.loadtest;

import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.TextGenerationGrpcClient;
import io.vertx.core.Future;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpClient;
import io.vertx.core.http.HttpClientOptions;
import io.vertx.core.http.HttpMethod;
import io.vertx.core.http.HttpVersion;
import io.vertx.core.net.SocketAddress;
import io.vertx.grpc.client.GrpcClient;
import io.vertx.grpc.client.GrpcClientOptions;
import io.vertx.grpc.common.GrpcStatus;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A closed-loop gRPC load generator: {@code concurrency} clients, each sending its next request as soon as the
 * previous one ends, for {@code duration} (then in-flight requests are allowed to finish, within a grace period).
 * For streams it measures what ghz cannot: time to first token and the latency between tokens of each stream. It
 * also samples the server's resident memory from {@code /metrics} every few seconds. Everything runs on one Vert.x
 * event loop; all state is confined to it.
 */
public final class LoadGenerator {

    /**
     * @param host a loopback address (the caller checks)
     * @param maxRequests stop sending after this many (0 = no limit other than the duration)
     * @param rssSampleSeconds how often to read the server's RSS from /metrics (0 = never)
     * @param apiKey sent as {@code authorization: Bearer KEY} on every call, or null
     * @param localAddress the address the client's connections come from (null: the system's choice); the server
     *        tells clients apart by address
     */
    public record Options(String host, int port, int concurrency, long durationMillis, long maxRequests,
                          boolean stream, GenerateRequest request, long timeoutMillis, int rssSampleSeconds,
                          String apiKey, String localAddress) {
        public Options(String host, int port, int concurrency, long durationMillis, long maxRequests, boolean stream,
                       GenerateRequest request, long timeoutMillis, int rssSampleSeconds, String apiKey) {
            this(host, port, concurrency, durationMillis, maxRequests, stream, request, timeoutMillis, rssSampleSeconds, apiKey, null);
        }

        /** Without an API key (a server started without --api-key). */
        public Options(String host, int port, int concurrency, long durationMillis, long maxRequests, boolean stream,
                       GenerateRequest request, long timeoutMillis, int rssSampleSeconds) {
            this(host, port, concurrency, durationMillis, maxRequests, stream, request, timeoutMillis, rssSampleSeconds, null);
        }
    }

    /** What a run measured; latencies in seconds. */
    public record Report(Map<String, Object> values) {}

    private final Options o;
    private final double ratePerSecond;
    private final Vertx vertx = Vertx.vertx();
    private final GrpcClient client;
    private final HttpClient http;
    private final SocketAddress address;

    private final Samples ttft = new Samples();
    private final Samples itl = new Samples();
    private final Samples e2e = new Samples();
    private final Map<String, Long> errors = new TreeMap<>();
    private final List<long[]> rss = new ArrayList<>(); // [seconds since start, bytes]
    private long started;
    private long sent;
    private long ok;
    private long tokens;
    private long firstSend;
    private long lastEnd;
    private int active;
    private final CompletableFuture<Void> done = new CompletableFuture<>();

    public LoadGenerator(Options options) {
        this(options, 0);
    }

    /**
     * ratePerSecond > 0: open-loop pacing on top of the closed loop, the n-th request is sent no earlier than n /
     * ratePerSecond seconds after the start (an attacker at a stated rate); 0: each client sends as soon as it can.
     */
    public LoadGenerator(Options options, double ratePerSecond) {
        if (!(ratePerSecond >= 0) || Double.isInfinite(ratePerSecond)) {
            throw new IllegalArgumentException("rate must be a finite number >= 0, got " + ratePerSecond);
        }
        this.o = options;
        this.ratePerSecond = ratePerSecond;
        this.client = GrpcClient.client(vertx, new GrpcClientOptions().setMaxMessageSize(16L << 20),
                new HttpClientOptions().setProtocolVersion(HttpVersion.HTTP_2).setHttp2ClearTextUpgrade(false)
                        .setLocalAddress(options.localAddress()));
        this.http = vertx.createHttpClient(new HttpClientOptions().setDefaultHost(options.host()).setDefaultPort(options.port()));
        this.address = SocketAddress.inetSocketAddress(options.port(), options.host());
    }

    public Report run() throws Exception {
        vertx.runOnContext(v -> begin());
        long grace = o.timeoutMillis() + 10_000;
        try {
            done.get(o.durationMillis() + grace, TimeUnit.MILLISECONDS);
        } finally {
            sampleRss().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
            vertx.close().toCompletionStage().toCompletableFuture().get(10, TimeUnit.SECONDS);
        }
        return report();
    }

    private void begin() {
        started = System.nanoTime();
        firstSend = started;
        if (o.rssSampleSeconds() > 0) {
            sampleRss();
            vertx.setPeriodic(o.rssSampleSeconds() * 1000L, id -> sampleRss());
        }
        for (int i = 0; i < o.concurrency(); i++) next();
    }

    private boolean more() {
        return System.nanoTime() - started < TimeUnit.MILLISECONDS.toNanos(o.durationMillis())
                && (o.maxRequests() == 0 || sent < o.maxRequests());
    }

    /** One client's next request, or the end of the run once the last one is back. */
    private void next() {
        if (!more()) {
            if (active == 0) done.complete(null);
            return;
        }
        if (ratePerSecond > 0) {
            long due = started + (long) (sent * 1e9 / ratePerSecond), wait = due - System.nanoTime();
            if (wait > 1_000_000) {
                vertx.setTimer(TimeUnit.NANOSECONDS.toMillis(wait), id -> next());
                return;
            }
        }
        sent++;
        active++;
        long t0 = System.nanoTime();
        Future<Void> call = o.stream() ? stream(t0) : unary(t0);
        call.onComplete(ar -> {
            active--;
            lastEnd = System.nanoTime();
            if (ar.succeeded()) {
                ok++;
                e2e.add(lastEnd - t0);
            } else {
                errors.merge(errorName(ar.cause()), 1L, Long::sum);
            }
            next();
        });
    }

    private Future<Void> unary(long t0) {
        return client.request(address, TextGenerationGrpcClient.Generate).compose(req -> {
            req.timeout(o.timeoutMillis(), TimeUnit.MILLISECONDS);
            authorize(req.headers());
            return req.end(o.request()).compose(v -> req.response()).compose(resp -> resp.last().map(last -> {
                GenerateResponse r = last;
                tokens += r.getTokenIdsCount();
                ttft.add(t0 == 0 ? 0 : System.nanoTime() - t0);
                return (Void) null;
            }));
        });
    }

    private Future<Void> stream(long t0) {
        return client.request(address, TextGenerationGrpcClient.GenerateStream).compose(req -> {
            req.timeout(o.timeoutMillis(), TimeUnit.MILLISECONDS);
            authorize(req.headers());
            return req.end(o.request()).compose(v -> req.response()).compose(resp -> {
                long[] last = {-1};
                resp.handler((GenerateStreamResponse m) -> {
                    int n = m.getTokenIdsCount();
                    if (n == 0) return;
                    long now = System.nanoTime();
                    tokens += n;
                    if (last[0] < 0) {
                        ttft.add(now - t0);
                        for (int i = 1; i < n; i++) itl.add(0);
                    } else {
                        long gap = (now - last[0]) / n; // ids that arrive together share the gap
                        for (int i = 0; i < n; i++) itl.add(gap);
                    }
                    last[0] = now;
                });
                return resp.end().compose(v -> resp.status() == GrpcStatus.OK ? Future.succeededFuture()
                        : Future.failedFuture(new StatusError(resp.status(), resp.statusMessage())));
            });
        });
    }

    private void authorize(io.vertx.core.MultiMap headers) {
        if (o.apiKey() != null) headers.set("authorization", "Bearer " + o.apiKey());
    }

    /** A stream that ended with a status other than OK. */
    private static final class StatusError extends RuntimeException {
        final GrpcStatus status;

        StatusError(GrpcStatus status, String message) {
            super(status + ": " + message, null, false, false);
            this.status = status;
        }
    }

    private static String errorName(Throwable t) {
        if (t instanceof StatusError e) return e.status.name();
        if (t instanceof io.vertx.grpc.client.InvalidStatusException e) return e.actualStatus().name();
        if (t instanceof io.vertx.grpc.common.GrpcErrorException e) return e.status().name();
        String s = String.valueOf(t);
        return s.length() > 120 ? s.substring(0, 120) : s;
    }

    private Future<Void> sampleRss() {
        long at = System.nanoTime();
        return http.request(HttpMethod.GET, "/metrics").compose(req -> {
            authorize(req.headers());
            return req.send();
        }).compose(resp -> resp.body()).map(body -> {
            for (String line : body.toString().split("\n")) {
                if (line.startsWith("sparseserve_process_resident_memory_bytes ")) {
                    double bytes = Double.parseDouble(line.substring(line.indexOf(' ') + 1).trim());
                    rss.add(new long[] {(at - started) / 1_000_000_000L, (long) bytes});
                }
            }
            return (Void) null;
        }).otherwise(e -> null);
    }

    private Report report() {
        double seconds = Math.max(1e-9, (lastEnd - firstSend) / 1e9);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("target", o.host() + ":" + o.port());
        r.put("method", o.stream() ? "GenerateStream" : "Generate");
        r.put("concurrency", o.concurrency());
        r.put("seconds", seconds);
        r.put("requests", sent);
        r.put("ok", ok);
        r.put("errors", errors.values().stream().mapToLong(Long::longValue).sum());
        r.put("errors_by_status", errors);
        r.put("generated_tokens", tokens);
        r.put("tokens_per_s", tokens / seconds);
        r.put("requests_per_s", ok / seconds);
        String first = o.stream() ? "ttft" : "latency";
        r.put(first + "_p50_s", ttft.percentileSeconds(50));
        r.put(first + "_p90_s", ttft.percentileSeconds(90));
        r.put(first + "_p99_s", ttft.percentileSeconds(99));
        if (o.stream()) {
            r.put("itl_p50_s", itl.percentileSeconds(50));
            r.put("itl_p90_s", itl.percentileSeconds(90));
            r.put("itl_p99_s", itl.percentileSeconds(99));
            r.put("itl_mean_s", itl.meanSeconds());
        }
        r.put("e2e_p50_s", e2e.percentileSeconds(50));
        r.put("e2e_p99_s", e2e.percentileSeconds(99));
        if (!rss.isEmpty()) {
            r.put("server_rss_first_bytes", rss.getFirst()[1]);
            r.put("server_rss_last_bytes", rss.getLast()[1]);
            r.put("server_rss_max_bytes", rss.stream().mapToLong(x -> x[1]).max().orElse(0));
            r.put("server_rss_samples", rss.stream().map(x -> List.of(x[0], x[1])).toList());
        }
        return new Report(r);
    }
}
