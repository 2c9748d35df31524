package io.sparseserve.cli;

import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.engine.Engine;
import io.sparseserve.metrics.ServingMetrics;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.server.SparseServer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
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
                    + "at most half the free heap; on a GPU what --gpu-memory-utilization leaves).")
    long kvCacheBytes;

    @Option(names = "--drain-timeout", defaultValue = "30",
            description = "Seconds to let running requests finish after SIGTERM (default ${DEFAULT-VALUE}).")
    int drainTimeout;

    @Override
    public Integer call() throws Exception {
        RunnerFactory runners = device.runners();
        if (port < 0 || port > 65535) throw new InvalidInputException("--port must be in [0, 65535], got " + port);
        if (drainTimeout < 0) throw new InvalidInputException("--drain-timeout must be >= 0 seconds, got " + drainTimeout);
        if (!Files.isDirectory(dir)) throw new InvalidInputException(dir + ": not a model folder (no such directory)");
        Path tokenizerFile = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(tokenizerFile)) throw new InvalidInputException(tokenizerFile + ": missing tokenizer.json");

        CountDownLatch stop = new CountDownLatch(1);
        Signal.handle(new Signal("TERM"), s -> stop.countDown());
        Signal.handle(new Signal("INT"), s -> stop.countDown());

        try (Model model = Model.load(dir); Tokenizer tokenizer = Tokenizer.load(tokenizerFile);
             ServingMetrics metrics = new ServingMetrics()) {
            Engine.Config config = new Engine.Config(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes,
                    RunnerConfig.DEFAULT_BLOCK_SIZE);
            Engine engine = new Engine(model, tokenizer, runners, config, metrics);
            String id = dir.toAbsolutePath().normalize().getFileName().toString();
            try (SparseServer server = new SparseServer(engine, metrics, new SparseServer.Options(host, port, id, engine.runner().device()))) {
                int actual = server.start();
                log.info("serving {} on {}:{} (gRPC sparseserve.v1.TextGeneration, health, reflection; HTTP /metrics "
                        + "/healthz /readyz /v1/completions /v1/models)", id, host, actual);
                // One line on stderr that scripts and tests can wait for.
                System.err.println("sparse-serve: listening on " + host + ":" + actual);
                stop.await();
                boolean clean = server.drain(Duration.ofSeconds(drainTimeout));
                log.info(clean ? "drained; shutting down" : "drain timed out; shutting down");
            }
        }
        return 0;
    }
}
