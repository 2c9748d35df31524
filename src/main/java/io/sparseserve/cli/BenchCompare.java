package io.sparseserve.cli;

import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.engine.Benchmark;
import io.sparseserve.model.Model;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code bench --compare DIR...}: several models measured in one process, in alternating rounds (each round runs
 * every model in turn, the order reversed every other round), so that every model sees the same range of machine
 * states and a ratio is taken between numbers measured side by side; medians over rounds, ratios to the first model.
 * Per model: decode tokens/s at each batch size, prefill tokens/s, and the weight bytes one decode step streams
 * (the dense head counts), whose ratio first/this is what a byte-bound batch-1 decode can gain.
 */
final class BenchCompare {
    /** What one run measures. */
    record Settings(List<Integer> batches, int newTokens, int promptTokens, int rounds, double warmupSeconds) {}

    private BenchCompare() {}

    static Map<String, Object> run(List<Path> dirs, Model.Compress compress, RunnerFactory runners, Settings s,
                                   PrintWriter progress) {
        List<Model> models = new ArrayList<>();
        List<Benchmark> benches = new ArrayList<>();
        try {
            for (Path dir : dirs) models.add(ModelOption.loadChecked(dir, 0, compress));
            int n = models.size(), nb = s.batches().size();
            int maxBatch = s.batches().stream().mapToInt(Integer::intValue).max().orElse(1);
            for (Model m : models) benches.add(new Benchmark(m, runners, maxBatch, s.newTokens() + 8, s.promptTokens()));
            int prompt = s.promptTokens();
            for (Model m : models) {
                if (prompt > m.config().maxPositions()) {
                    throw new io.sparseserve.model.InvalidInputException("--prompt-tokens " + prompt + " exceeds the context length "
                            + m.config().maxPositions() + " of " + m.dir());
                }
            }
            // Warm-up until the JIT has compiled every kernel each model uses, at every batch size.
            for (Benchmark b : benches) {
                long end = System.nanoTime() + (long) (s.warmupSeconds() * 1e9);
                do {
                    for (int batch : s.batches()) b.decode(batch, 8, 0);
                    b.prefill(prompt, 1);
                } while (System.nanoTime() < end);
            }
            double[][][] decode = new double[n][nb][s.rounds()];
            double[][] prefill = new double[n][s.rounds()];
            for (int r = 0; r < s.rounds(); r++) {
                for (int k = 0; k < n; k++) {
                    int i = r % 2 == 0 ? k : n - 1 - k;
                    for (int j = 0; j < nb; j++) decode[i][j][r] = benches.get(i).decode(s.batches().get(j), s.newTokens(), 4).tokensPerSecond();
                    prefill[i][r] = benches.get(i).prefill(prompt, 1).tokensPerSecond();
                }
                if (progress != null) progress.printf("round %d of %d done%n", r + 1, s.rounds());
            }
            List<Map<String, Object>> rows = new ArrayList<>();
            long firstBytes = benches.get(0).streamedBytesPerStep();
            double[] firstDecode = new double[nb];
            double firstPrefill = BenchCommand.median(prefill[0]);
            for (int j = 0; j < nb; j++) firstDecode[j] = BenchCommand.median(decode[0][j]);
            for (int i = 0; i < n; i++) {
                Model m = models.get(i);
                long bytes = benches.get(i).streamedBytesPerStep();
                Map<String, Object> row = new LinkedHashMap<>();
                row.put("model", m.dir().toString());
                row.put("weight_bytes", m.weightBytes());
                row.put("streamed_bytes_per_token", bytes);
                row.put("bytes_ratio", (double) firstBytes / bytes);
                List<Map<String, Object>> perBatch = new ArrayList<>();
                for (int j = 0; j < nb; j++) {
                    double tps = BenchCommand.median(decode[i][j]);
                    Map<String, Object> d = new LinkedHashMap<>();
                    d.put("batch", s.batches().get(j));
                    d.put("tokens_per_s", tps);
                    d.put("ratio", tps / firstDecode[j]);
                    d.put("ratio_over_bytes_ratio", tps / firstDecode[j] / ((double) firstBytes / bytes));
                    d.put("rounds", decode[i][j]);
                    perBatch.add(d);
                }
                row.put("decode", perBatch);
                double p = BenchCommand.median(prefill[i]);
                row.put("prefill_tokens", prompt);
                row.put("prefill_tokens_per_s", p);
                row.put("prefill_ratio", p / firstPrefill);
                row.put("prefill_rounds", prefill[i]);
                rows.add(row);
            }
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("device", "cpu");
            result.put("rounds", s.rounds());
            result.put("new_tokens", s.newTokens());
            result.put("models", rows);
            return result;
        } finally {
            for (Benchmark b : benches) b.close();
            for (Model m : models) m.close();
        }
    }

    /** The table: one line per model, medians and ratios to the first line. */
    @SuppressWarnings("unchecked")
    static void print(PrintWriter out, Map<String, Object> result) {
        List<Map<String, Object>> rows = (List<Map<String, Object>>) result.get("models");
        StringBuilder head = new StringBuilder(String.format("%-28s %10s %7s", "model", "MB/token", "bytes×"));
        for (Map<String, Object> d : (List<Map<String, Object>>) rows.get(0).get("decode")) {
            int b = (int) d.get("batch");
            head.append(String.format(" %10s %6s", "b" + b + " tok/s", "×"));
            if (b == 1) head.append(String.format(" %7s", "×/bytes"));
        }
        head.append(String.format(" %13s %6s", "prefill tok/s", "×"));
        out.println(head);
        for (Map<String, Object> row : rows) {
            StringBuilder line = new StringBuilder(String.format("%-28s %10.1f %7.2f", shortName((String) row.get("model")),
                    (long) row.get("streamed_bytes_per_token") / 1e6, (double) row.get("bytes_ratio")));
            for (Map<String, Object> d : (List<Map<String, Object>>) row.get("decode")) {
                line.append(String.format(" %10.1f %6.2f", (double) d.get("tokens_per_s"), (double) d.get("ratio")));
                if ((int) d.get("batch") == 1) line.append(String.format(" %7.2f", (double) d.get("ratio_over_bytes_ratio")));
            }
            line.append(String.format(" %13.1f %6.2f", (double) row.get("prefill_tokens_per_s"), (double) row.get("prefill_ratio")));
            out.println(line);
        }
        out.printf("medians of %d alternating rounds (%d decode steps each); × = ratio to the first model; bytes× = weight "
                + "bytes streamed per token, first over this; ×/bytes = batch-1 ratio over bytes×%n",
                (int) result.get("rounds"), (int) result.get("new_tokens"));
    }

    private static String shortName(String dir) {
        return dir.length() <= 28 ? dir : "…" + dir.substring(dir.length() - 27);
    }
}
