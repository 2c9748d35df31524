package io.sparseserve.cli;

import io.sparseserve.loadtest.AbuseSuite;
import io.sparseserve.model.InvalidInputException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "abuse", mixinStandardHelpOptions = true,
        description = "The adversarial suite: attack a running sparse-serve on this machine (slow readers, connection "
                + "flood, garbage frames, HTTP/2 floods, 10 MB bodies, JSON fuzz, disconnects, wrong keys, SIGTERM) while "
                + "a well-behaved client streams, one row per scenario. Loopback only; bounded in count and time. "
                + "Normally run through loadtest/abuse/run.sh, which starts and stops the server.")
final class AbuseCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Server address; must be a loopback address.")
    String host;

    @Option(names = "--port", defaultValue = "50051") int port;

    @Option(names = "--api-key", description = "The server's key (the well-behaved client sends it; the wrong-key scenario needs one). "
            + "Default: the environment variable SPARSE_SERVE_API_KEY.")
    String apiKey;

    @Option(names = "--server-pid", defaultValue = "0", description = "The server's pid: the last scenario sends it SIGTERM (0 = skip that scenario).")
    long serverPid;

    @Option(names = "--seconds", defaultValue = "20", description = "Length of each scenario, 5..300 s (default ${DEFAULT-VALUE}).")
    int seconds;

    @Option(names = "--scale", defaultValue = "1", description = "Multiplies every attacker count, (0, 1] (1 = the issue's counts; default ${DEFAULT-VALUE}).")
    double scale;

    @Option(names = "--concurrency", defaultValue = "2", description = "Streams of the well-behaved client (default ${DEFAULT-VALUE}).")
    int concurrency;

    @Option(names = "--max-new-tokens", defaultValue = "16", description = "Tokens per well-behaved stream (default ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--seed", defaultValue = "1", description = "Seed of the random attackers (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--only", split = ",", description = "Run only these scenarios (and the baseline), comma-separated.")
    List<String> only = new ArrayList<>();

    @Option(names = "--attacker-address", defaultValue = "127.0.0.2",
            description = "Loopback address the attackers connect from, so that the server sees them as another client "
                    + "than the well-behaved one (Linux routes all of 127/8 to loopback; default ${DEFAULT-VALUE}; "
                    + "'same' = the well-behaved client's address).")
    String attackerAddress;

    @Option(names = "--json", description = "Print one JSON array of rows.")
    boolean json;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        LoadtestCommand.requireLoopback(host);
        if (port < 1 || port > 65535) throw new InvalidInputException("--port must be in [1, 65535], got " + port);
        if (seconds < 5 || seconds > 300) throw new InvalidInputException("--seconds must be in [5, 300], got " + seconds);
        if (!(scale > 0 && scale <= 1)) throw new InvalidInputException("--scale must be in (0, 1], got " + scale);
        if (concurrency < 1 || concurrency > 64) throw new InvalidInputException("--concurrency must be in [1, 64], got " + concurrency);
        if (maxNewTokens < 1 || maxNewTokens > 4096) throw new InvalidInputException("--max-new-tokens must be in [1, 4096], got " + maxNewTokens);
        if (apiKey == null) apiKey = System.getenv("SPARSE_SERVE_API_KEY");
        String from = attackerAddress.equals("same") ? null : attackerAddress;
        if (from != null) LoadtestCommand.requireLoopback(from);
        var suite = new AbuseSuite(new AbuseSuite.Options(host, port, apiKey, serverPid, seconds, scale, concurrency,
                maxNewTokens, seed, only, from));
        if (!json) out.println(AbuseTable.header());
        out.flush();
        List<AbuseSuite.Row> rows = suite.run(row -> {
            if (!json) {
                out.println(AbuseTable.row(row.values()));
                out.flush();
            }
        });
        if (json) Json.print(out, rows.stream().map(AbuseSuite.Row::values).toList());
        long found = rows.stream().filter(r -> !((List<?>) r.values().get("found")).isEmpty()).count();
        if (!json) out.printf("%d of %d scenarios found a problem%n", found, rows.size());
        return 0;
    }

    /** The table's text form: one line of figures per scenario, then what the attacker did and saw. */
    static final class AbuseTable {
        private AbuseTable() {}

        static String header() {
            return String.format("%-17s %9s %9s %6s %8s %6s %6s %7s %4s %4s %9s %9s  %s", "scenario", "TTFT p50", "TTFT p99",
                    "x base", "tok/s", "x base", "errors", "KV used", "run", "wait", "RSS bef.", "RSS aft.", "found");
        }

        static String row(Map<String, Object> v) {
            String first = String.format("%-17s %8.1fms %8.1fms %6s %8.1f %6s %6s %7s %4s %4s %8.0fM %9s  %s",
                    v.get("scenario"), 1000 * d(v.get("ttft_p50_s")), 1000 * d(v.get("ttft_p99_s")),
                    ratio(v.get("ttft_p99_vs_baseline")), d(v.get("tokens_per_s")), ratio(v.get("tokens_per_s_vs_baseline")),
                    v.get("errors"), num(v.get("kv_usage_after"), "%.3f"), num(v.get("running_after"), "%.0f"),
                    num(v.get("waiting_after"), "%.0f"), d(v.get("rss_before_bytes")) / 1e6,
                    v.get("rss_after_bytes") == null ? "-" : String.format("%.0fM", d(v.get("rss_after_bytes")) / 1e6),
                    ((List<?>) v.get("found")).isEmpty() ? "-" : String.join("; ", (List<String>) v.get("found")));
            return first + "\n    attack: " + v.get("attack") + "\n    saw: " + v.get("attacker")
                    + (d(v.get("errors")) > 0 ? "\n    client errors: " + v.get("errors_by_status") : "");
        }

        private static double d(Object o) {
            return o instanceof Number n ? n.doubleValue() : Double.NaN;
        }

        private static String ratio(Object o) {
            return o == null ? "-" : String.format("%.2f", d(o));
        }

        private static String num(Object o, String f) {
            return o == null ? "-" : String.format(f, d(o));
        }
    }
}
