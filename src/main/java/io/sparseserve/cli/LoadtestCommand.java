package io.sparseserve.cli;

import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.loadtest.LoadGenerator;
import io.sparseserve.model.InvalidInputException;
import java.io.PrintWriter;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "loadtest", mixinStandardHelpOptions = true,
        description = "Load a running sparse-serve on this machine with concurrent gRPC clients and report time to first "
                + "token, inter-token latency, aggregate tokens/s and errors. Loopback targets only; bounded in time.")
final class LoadtestCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Server address; must be a loopback address.")
    String host;

    @Option(names = "--port", defaultValue = "50051") int port;

    @Option(names = "--concurrency", defaultValue = "16", description = "Clients, each with one request in flight (default ${DEFAULT-VALUE}).")
    int concurrency;

    @Option(names = "--duration", defaultValue = "30", description = "Seconds to send requests for, at most 3600 (default ${DEFAULT-VALUE}).")
    int duration;

    @Option(names = "--max-requests", defaultValue = "0", description = "Stop after this many requests (0 = only the duration bounds them).")
    long maxRequests;

    @Option(names = "--unary", description = "Call Generate instead of GenerateStream.")
    boolean unary;

    @Option(names = "--prompt", defaultValue = "Once upon a time", description = "Prompt of every request.")
    String prompt;

    @Option(names = "--max-new-tokens", defaultValue = "64") int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0") float temperature;

    @Option(names = "--ignore-eos", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Generate exactly --max-new-tokens per request (default ${DEFAULT-VALUE}).")
    boolean ignoreEos;

    @Option(names = "--timeout", defaultValue = "120", description = "Per-request deadline in seconds (default ${DEFAULT-VALUE}).")
    int timeout;

    @Option(names = "--rss-every", defaultValue = "5", description = "Read the server's RSS from /metrics every N seconds (0 = never).")
    int rssEvery;

    @Option(names = "--json", description = "Print one JSON object.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        requireLoopback(host);
        if (port < 1 || port > 65535) throw new InvalidInputException("--port must be in [1, 65535], got " + port);
        if (concurrency < 1 || concurrency > 1024) throw new InvalidInputException("--concurrency must be in [1, 1024], got " + concurrency);
        if (duration < 1 || duration > 3600) throw new InvalidInputException("--duration must be in [1, 3600] seconds, got " + duration);
        if (maxRequests < 0) throw new InvalidInputException("--max-requests must be >= 0, got " + maxRequests);
        if (timeout < 1 || timeout > 3600) throw new InvalidInputException("--timeout must be in [1, 3600] seconds, got " + timeout);
        if (rssEvery < 0) throw new InvalidInputException("--rss-every must be >= 0, got " + rssEvery);
        GenerateRequest request = GenerateRequest.newBuilder().setPrompt(prompt).setMaxNewTokens(maxNewTokens)
                .setTemperature(temperature).setIgnoreEos(ignoreEos).setRequestId("loadtest").build();
        LoadGenerator.Report report = new LoadGenerator(new LoadGenerator.Options(host, port, concurrency,
                duration * 1000L, maxRequests, !unary, request, timeout * 1000L, rssEvery)).run();
        Map<String, Object> r = report.values();
        if (json) {
            Json.print(out, r);
        } else {
            r.forEach((k, v) -> {
                if (!k.equals("server_rss_samples")) out.printf("%-24s %s%n", k, v instanceof Double x ? String.format("%.4f", x) : v);
            });
        }
        return 0;
    }

    /** The load generator may only target this machine. */
    static void requireLoopback(String host) {
        try {
            if (!InetAddress.getByName(host).isLoopbackAddress()) {
                throw new InvalidInputException("--host " + host + " is not a loopback address: the load test only targets this machine");
            }
        } catch (UnknownHostException e) {
            throw new InvalidInputException("--host " + host + ": unknown host");
        }
    }
}
