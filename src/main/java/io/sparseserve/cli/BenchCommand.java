package io.sparseserve.cli;

import io.sparseserve.backend.cpu.MemoryBandwidth;
import io.sparseserve.backend.cpu.CpuPool;
import io.sparseserve.engine.Benchmark;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.tensor.MemoryStats;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;
import java.io.PrintWriter;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure decode and prefill speed against this machine's memory bandwidth, in one run.")
final class BenchCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "Hugging Face model folder (or --compare).")
    Path modelDir;

    @Option(names = "--compare", arity = "1..*", paramLabel = "DIR",
            description = "Several models in one process, in alternating rounds: medians and ratios to the first (decode at "
                    + "each of --batches, prefill of --prompt-tokens, weight bytes streamed per token).")
    List<Path> compare;

    @Option(names = "--batches", split = ",", defaultValue = "1,16", paramLabel = "N,N",
            description = "With --compare: the decode batch sizes (default ${DEFAULT-VALUE}).")
    List<Integer> batches;

    @Option(names = "--compress", defaultValue = "auto", paramLabel = "auto|off", description = ModelOption.COMPRESS_HELP)
    String compress;

    @Mixin DeviceOption device;

    @Option(names = "--new-tokens", defaultValue = "64", description = "Decode steps timed in each round.")
    int newTokens;

    @Option(names = "--rounds", defaultValue = "5",
            description = "Rounds of (copy bandwidth, read bandwidth, decode) measured in turn; the medians are reported.")
    int rounds;

    @Option(names = "--warmup-seconds", defaultValue = "3",
            description = "Decode before anything is measured, so that the JIT has compiled every kernel.")
    double warmupSeconds;

    @Option(names = "--batch", defaultValue = "1", description = "Sequences decoding together.")
    int batch;

    @Option(names = "--prompt-tokens", defaultValue = "256", description = "Prefill prompt length.")
    int promptTokens;

    @Option(names = "--copy-mb", defaultValue = "512", description = "Size of each array of the copy-bandwidth test, MiB.")
    int copyMb;

    @Option(names = "--json", description = "Print one JSON object.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (newTokens < 1) throw new InvalidInputException("--new-tokens must be >= 1, got " + newTokens);
        if (batch < 1 || batch > 1024) throw new InvalidInputException("--batch must be in [1, 1024], got " + batch);
        if (promptTokens < 1) throw new InvalidInputException("--prompt-tokens must be >= 1, got " + promptTokens);
        if (copyMb < 16) throw new InvalidInputException("--copy-mb must be >= 16, got " + copyMb);
        if (rounds < 1 || rounds > 100) throw new InvalidInputException("--rounds must be in [1, 100], got " + rounds);
        if (!(warmupSeconds >= 0 && warmupSeconds <= 600)) {
            throw new InvalidInputException("--warmup-seconds must be in [0, 600], got " + warmupSeconds);
        }
        Model.Compress compressMode = ModelOption.compressMode(compress);
        var runners = device.runners();
        if (compare != null) {
            if (modelDir != null) throw new InvalidInputException("give --model or --compare, not both");
            for (int b : batches) if (b < 1 || b > 1024) throw new InvalidInputException("--batches must be in [1, 1024], got " + b);
            var settings = new BenchCompare.Settings(batches, newTokens, promptTokens, rounds, warmupSeconds);
            var result = BenchCompare.run(compare, compressMode, runners, settings, json ? null : out);
            if (json) Json.print(out, result);
            else BenchCompare.print(out, result);
            return 0;
        }
        if (modelDir == null) throw new InvalidInputException("--model DIR (or --compare DIR...) is required");
        try (Model m = ModelOption.loadChecked(modelDir, 0, compressMode)) {
            long rssBefore = MemoryStats.residentBytes();
            try (Benchmark bench = new Benchmark(m, runners, batch, Math.max(16, newTokens + 4), promptTokens)) {
                return run(out, m, bench, rssBefore);
            }
        }
    }

    private int run(PrintWriter out, Model m, Benchmark bench, long rssBefore) {
        // Warm-up until the JIT has compiled every kernel: a fixed number of steps is not enough on a slow machine.
        long warmEnd = System.nanoTime() + (long) (warmupSeconds * 1e9);
        do bench.decode(batch, 16, 0); while (System.nanoTime() < warmEnd);
        bench.prefill(Math.min(promptTokens, m.config().maxPositions()), 1);
        long rssLoaded = MemoryStats.residentBytes();
        // This machine's bandwidth drifts by tens of percent within a minute, so copy, read and decode are measured
        // in alternating rounds and the medians compared: all three then saw the same range of conditions, and one
        // outlying round (copy once read 76 GB/s between rounds of 50) does not decide the result.
        List<MemorySegment> streamed = bench.streamedSegments();
        double[] copy = new double[rounds], read = new double[rounds], onePass = new double[rounds], decode = new double[rounds];
        List<Map<String, Object>> perRound = new ArrayList<>();
        long bytesPerStep = bench.streamedBytesPerStep();
        for (int r = 0; r < rounds; r++) {
            copy[r] = MemoryBandwidth.copy(CpuPool.shared(), (long) copyMb << 20, 3) / 1e9;
            read[r] = MemoryBandwidth.read(CpuPool.shared(), streamed, 3) / 1e9;
            onePass[r] = MemoryBandwidth.readOnePass(CpuPool.shared(), streamed, 3) / 1e9;
            decode[r] = bench.decode(batch, newTokens, 4).tokensPerSecond();
            Map<String, Object> round = new LinkedHashMap<>();
            round.put("copy_gbps", copy[r]);
            round.put("read_gbps", read[r]);
            round.put("read_one_pass_gbps", onePass[r]);
            round.put("decode_weight_gbps", weightGbps(bytesPerStep, decode[r]));
            perRound.add(round);
        }
        Benchmark.Prefill p = bench.prefill(promptTokens, 3);
        double tokensPerSecond = median(decode), copyGbps = median(copy), readGbps = median(read);
        double decodeGbps = weightGbps(bytesPerStep, tokensPerSecond);
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("device", bench.runner().device());
        result.put("threads", CpuPool.shared().threads());
        result.put("batch", batch);
        result.put("decode_tokens_per_s", tokensPerSecond);
        result.put("decode_weight_gbps", decodeGbps);
        result.put("copy_gbps", copyGbps);
        result.put("decode_bandwidth_ratio", decodeGbps / copyGbps);
        result.put("read_gbps", readGbps);
        result.put("decode_read_ratio", decodeGbps / readGbps);
        result.put("read_one_pass_gbps", median(onePass));
        result.put("read_one_pass_copy_ratio", median(onePass) / copyGbps);
        result.put("prefill_tokens", p.tokens());
        result.put("prefill_tokens_per_s", p.tokensPerSecond());
        result.put("prefill_gflops", p.flops() / p.seconds() / 1e9);
        result.put("weight_bytes", m.weightBytes());
        result.put("dense_equivalent_bytes", m.denseEquivalentBytes());
        result.put("streamed_bytes_per_token", bytesPerStep);
        result.put("rss_bytes", rssLoaded);
        result.put("rss_before_bench_bytes", rssBefore);
        result.put("rss_over_weights_bytes", rssLoaded - m.weightBytes());
        result.put("rounds", perRound);
        if (json) {
            Json.print(out, result);
        } else {
            result.forEach((k, v) -> out.printf("%-28s %s%n", k, v instanceof Double x ? String.format("%.3f", x)
                    : v instanceof List<?> l ? l.stream().map(BenchCommand::brief).toList() : v));
        }
        return 0;
    }

    /** Weight bytes streamed per second (GB/s) at {@code tokensPerSecond} over the batch: one read per step. */
    private double weightGbps(long bytesPerStep, double tokensPerSecond) {
        return bytesPerStep * (tokensPerSecond / batch) / 1e9;
    }

    /** The median of a few values (the mean of the middle two for an even count). */
    static double median(double[] values) {
        double[] v = values.clone();
        Arrays.sort(v);
        int n = v.length;
        return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    private static String brief(Object round) {
        StringBuilder b = new StringBuilder();
        ((Map<?, ?>) round).forEach((k, v) -> b.append(b.isEmpty() ? "" : " ").append(k).append('=').append(String.format("%.1f", (Double) v)));
        return b.toString();
    }
}
