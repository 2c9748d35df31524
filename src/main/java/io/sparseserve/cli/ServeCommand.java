package io.sparseserve.cli;

import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.server.ApiKeyAuth;
import io.sparseserve.server.ServerLimits;
import io.sparseserve.server.ServerSecurity;
import io.sparseserve.server.SparseServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import sun.misc.Signal;

@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve a model over gRPC (sparseserve.v1.TextGeneration, health, reflection) and HTTP "
                + "(/metrics, /healthz, /readyz, /v1/completions, /v1/models) on one port, until SIGTERM.")
final class ServeCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(ServeCommand.class);

    @Option(names = "--model", paramLabel = "DIR", defaultValue = "models/kdoc-llama-5m",
            description = "Hugging Face model folder, dense or pruned (default: ${DEFAULT-VALUE}, the bundled model, "
                    + "relative to the working directory).")
    Path dir;

    @Option(names = "--compress", defaultValue = "auto", paramLabel = "auto|off", description = ModelOption.COMPRESS_HELP)
    String compress;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to listen on: 127.0.0.1 (default) or 0.0.0.0.")
    String host;

    @Option(names = "--port", defaultValue = "50051", description = "Port for gRPC and HTTP (default ${DEFAULT-VALUE}; 0 = any free port).")
    int port;

    @Mixin DeviceOption device;

    @Option(names = "--max-batch-tokens", defaultValue = "512",
            description = "Tokens per forward step at most: decodes plus prompt chunks (default ${DEFAULT-VALUE}).")
    int maxBatchTokens;

    @Option(names = "--max-running", defaultValue = "64", description = "Sequences decoding together at most (default ${DEFAULT-VALUE}).")
    int maxRunning;

    @Option(names = "--max-waiting", defaultValue = "256",
            description = "Queued requests at most; more get RESOURCE_EXHAUSTED (default ${DEFAULT-VALUE}).")
    int maxWaiting;

    @Option(names = "--kv-cache-bytes", defaultValue = "0",
            description = "KV-cache budget in bytes (default 0: on the cpu enough for --max-running full-length sequences, "
                    + "at most half the memory available at start, native memory off the Java heap; on a GPU what "
                    + "--gpu-memory-utilization leaves).")
    long kvCacheBytes;

    @Option(names = "--served-model-name", paramLabel = "NAME",
            description = "The model's name in the API (/v1/models, the OpenAI 'model' field, GetModelInfo); default: the folder's name.")
    String servedModelName;

    @Option(names = "--max-model-len", paramLabel = "N", defaultValue = "0",
            description = "Serve at most N positions of context (default: the model's max_position_embeddings); "
                    + "the KV cache is sized to it.")
    int maxModelLen;

    @Option(names = "--drain-timeout", defaultValue = "30",
            description = "Seconds to let running requests finish after SIGTERM (default ${DEFAULT-VALUE}).")
    int drainTimeout;

    @Option(names = "--api-key", paramLabel = "KEY",
            description = "Require 'authorization: Bearer KEY' on every gRPC call and /v1 route (health stays open). "
                    + "Also --api-key-file or the environment variable " + ApiKeyAuth.ENV + ".")
    String apiKey;

    @Option(names = "--api-key-file", paramLabel = "FILE", description = "Read the API key from the first line of FILE.")
    Path apiKeyFile;

    @Option(names = "--metrics-auth", description = "/metrics needs the API key too (default: open).")
    boolean metricsAuth;

    @Option(names = "--tls-cert", paramLabel = "FILE", description = "PEM certificate (chain): serve gRPC over TLS and HTTPS.")
    Path tlsCert;

    @Option(names = "--tls-key", paramLabel = "FILE", description = "PEM private key of --tls-cert.")
    Path tlsKey;

    @Option(names = "--max-connections", defaultValue = "512",
            description = "Open connections at most; more are closed at once (default ${DEFAULT-VALUE}).")
    int maxConnections;

    @Option(names = "--max-connections-per-client", defaultValue = "0",
            description = "Open connections from one client address at most; more are closed at once "
                    + "(default 0 = half of --max-connections).")
    int maxConnectionsPerClient;

    @Option(names = "--max-running-per-client", defaultValue = "0",
            description = "Running sequences of one client at most (default 0 = no cap: clients share the running "
                    + "slots fairly, and a lone client may use them all). A client is its address (--client-id-header).")
    int maxRunningPerClient;

    @Option(names = "--shared-prefill-ms", defaultValue = "10",
            description = "While more than one client has work (or finished a request in the last second), each "
                    + "client's prompt tokens in one step are capped at what the recent steps say runs in this many "
                    + "milliseconds (at least 16 tokens), so that one client's long prompts do not hold up everyone "
                    + "else's tokens; a lone client gets all of --max-batch-tokens (default ${DEFAULT-VALUE}; 0 = no cap).")
    double sharedPrefillMillis;

    @Option(names = "--max-waiting-per-client", defaultValue = "0",
            description = "Waiting requests of one client at most; more get RESOURCE_EXHAUSTED / 429 "
                    + "(default 0 = no share beyond --max-waiting).")
    int maxWaitingPerClient;

    @Option(names = "--client-id-header", paramLabel = "NAME",
            description = "Behind a trusted reverse proxy only: take the client's address from this header (the last "
                    + "entry of e.g. X-Forwarded-For) instead of the connection's peer address. Clients can forge it "
                    + "when they reach the server directly.")
    String clientIdHeader;

    @Option(names = "--max-streams-per-connection", defaultValue = "100",
            description = "HTTP/2 concurrent streams per connection (default ${DEFAULT-VALUE}).")
    int maxStreams;

    @Option(names = "--idle-timeout", defaultValue = "300",
            description = "Seconds a connection may send and receive nothing before it is closed (default ${DEFAULT-VALUE}).")
    int idleTimeout;

    @Option(names = "--stream-idle-timeout", defaultValue = "60",
            description = "Seconds a stream may wait for its client to read before it is cancelled (default ${DEFAULT-VALUE}).")
    int streamIdleTimeout;

    @Option(names = "--tokenizer-threads", defaultValue = "2",
            description = "Threads that tokenize prompts off the network threads (default ${DEFAULT-VALUE}).")
    int tokenizerThreads;

    @Option(names = "--tokenizer-queue", defaultValue = "64",
            description = "Prompts waiting for a tokenizer thread at most; more get RESOURCE_EXHAUSTED / 429 (default ${DEFAULT-VALUE}).")
    int tokenizerQueue;

    /** The warning to print, if any: every interface and no key means anyone who can reach the port can use it. */
    static String exposureWarning(String host, ApiKeyAuth key) {
        boolean loopback = host.equals("127.0.0.1") || host.equals("::1") || host.equals("localhost");
        return loopback || key != null ? null
                : "warning: listening on " + host + " without an API key: anyone who can reach this port can use it "
                        + "(set --api-key, --api-key-file or " + ApiKeyAuth.ENV + ")";
    }

    @Override
    public Integer call() throws Exception {
        RunnerFactory runners = device.runners();
        if (port < 0 || port > 65535) throw new InvalidInputException("--port must be in [0, 65535], got " + port);
        if (drainTimeout < 0) throw new InvalidInputException("--drain-timeout must be >= 0 seconds, got " + drainTimeout);
        if (!Files.isDirectory(dir)) throw new InvalidInputException(dir + ": not a model folder (no such directory)");
        ApiKeyAuth key = ApiKeyAuth.resolve(apiKey, apiKeyFile, System.getenv());
        ServerSecurity security = new ServerSecurity(key, tlsCert, tlsKey, metricsAuth);
        ServerLimits limits = new ServerLimits(maxConnections, maxStreams, Duration.ofSeconds(idleTimeout),
                Duration.ofSeconds(streamIdleTimeout), tokenizerThreads, tokenizerQueue, maxConnectionsPerClient, clientIdHeader);
        String warning = exposureWarning(host, key);
        if (warning != null) {
            log.warn(warning);
            System.err.println("sparse-serve: " + warning);
        }
        Model.Compress compressMode = ModelOption.compressMode(compress);
        Path tokenizerFile = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerFile)) throw new InvalidInputException(tokenizerFile + ": missing tokenizer.json");

        if (maxModelLen < 0) throw new InvalidInputException("--max-model-len must be >= 1, got " + maxModelLen);
        if (servedModelName != null && servedModelName.isBlank()) {
            throw new InvalidInputException("--served-model-name must not be blank");
        }
        try (Model model = Model.load(dir, maxModelLen, compressMode); Tokenizer tokenizer = Tokenizer.load(tokenizerFile);
             ServingMetrics metrics = new ServingMetrics()) {
            Engine.Config config = new Engine.Config(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes,
                    RunnerConfig.DEFAULT_BLOCK_SIZE, maxRunningPerClient, maxWaitingPerClient, sharedPrefillMillis);
            Engine engine = new Engine(model, tokenizer, runners, config, metrics);
            String id = servedModelName != null ? servedModelName : dir.toAbsolutePath().normalize().getFileName().toString();
            // A sticky device error ends the process non-zero (an orchestrator restarts it): the server has turned
            // NOT_SERVING when this is called; the main thread then closes it and returns the exit code.
            CountDownLatch stop = new CountDownLatch(1);
            AtomicReference<DeviceFailure> failed = new AtomicReference<>();
            try (SparseServer server = new SparseServer(engine, metrics,
                    new SparseServer.Options(host, port, id, engine.runner().device(), security, limits).onDeviceFailure(f -> {
                        failed.set(f);
                        stop.countDown();
                    }))) {
                int actual = server.start();
                // Installed once listening: a start that fails exits as usual (and an in-process caller keeps its own).
                Signal.handle(new Signal("TERM"), s -> stop.countDown());
                Signal.handle(new Signal("INT"), s -> stop.countDown());
                log.info("serving {} on {}:{} (gRPC sparseserve.v1.TextGeneration, health, reflection; HTTP /metrics "
                        + "/healthz /readyz /v1/completions /v1/models)", id, host, actual);
                // One line on stderr that scripts and tests can wait for.
                System.err.println("sparse-serve: listening on " + host + ":" + actual);
                stop.await();
                if (failed.get() != null) {
                    System.err.println("error: device failed, exiting so that the server is restarted: " + failed.get().getMessage());
                    return Main.EXIT_INTERNAL;
                }
                boolean clean = server.drain(Duration.ofSeconds(drainTimeout));
                log.info(clean ? "drained; shutting down" : "drain timed out; shutting down");
            }
        }
        return 0;
    }
}
