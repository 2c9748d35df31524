package io.sparseserve.cli;

import io.sparseserve.backend.cpu.CopyBandwidth;
import io.sparseserve.backend.cpu.CpuBackend;
import io.sparseserve.backend.cpu.CpuPool;
import io.sparseserve.engine.Benchmark;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.tensor.MemoryStats;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;
import java.io.PrintWriter;

@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure decode and prefill speed against this machine's memory copy bandwidth, in one run.")
final class BenchCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu (the CUDA backend is not built yet).")
    String device;

    @Option(names = "--new-tokens", defaultValue = "64", description = "Decode steps timed (after 8 warm-up steps).")
    int newTokens;

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
        if (!device.equals("cpu")) throw new InvalidInputException("--device " + device + " is not available (this build serves cpu)");
        if (newTokens < 1) throw new InvalidInputException("--new-tokens must be >= 1, got " + newTokens);
        if (batch < 1 || batch > 1024) throw new InvalidInputException("--batch must be in [1, 1024], got " + batch);
        if (promptTokens < 1) throw new InvalidInputException("--prompt-tokens must be >= 1, got " + promptTokens);
        if (copyMb < 16) throw new InvalidInputException("--copy-mb must be >= 16, got " + copyMb);
        try (Model m = model.load()) {
            long rssBefore = MemoryStats.residentBytes();
            Benchmark bench = new Benchmark(m, new CpuBackend(m.config().maxPositions()));
            bench.decode(batch, 8, 8); // JIT warm-up of every kernel
            bench.prefill(Math.min(promptTokens, m.config().maxPositions()), 1);
            long rssLoaded = MemoryStats.residentBytes();
            double copy = CopyBandwidth.measure(CpuPool.shared(), (long) copyMb << 20, 5);
            Benchmark.Decode d = bench.decode(batch, newTokens, 8);
            Benchmark.Prefill p = bench.prefill(promptTokens, 3);
            double decodeGbps = d.bytesPerStep() * (d.tokensPerSecond() / batch) / 1e9;
            Map<String, Object> result = new LinkedHashMap<>();
            result.put("device", "cpu");
            result.put("threads", CpuPool.shared().threads());
            result.put("batch", batch);
            result.put("decode_tokens_per_s", d.tokensPerSecond());
            result.put("decode_weight_gbps", decodeGbps);
            result.put("copy_gbps", copy / 1e9);
            result.put("decode_bandwidth_ratio", decodeGbps / (copy / 1e9));
            result.put("prefill_tokens", p.tokens());
            result.put("prefill_tokens_per_s", p.tokensPerSecond());
            result.put("prefill_gflops", p.flops() / p.seconds() / 1e9);
            result.put("weight_bytes", m.weightBytes());
            result.put("dense_equivalent_bytes", m.denseEquivalentBytes());
            result.put("streamed_bytes_per_token", d.bytesPerStep());
            result.put("rss_bytes", rssLoaded);
            result.put("rss_before_bench_bytes", rssBefore);
            result.put("rss_over_weights_bytes", rssLoaded - m.weightBytes());
            if (json) {
                Json.print(out, result);
            } else {
                result.forEach((k, v) -> out.printf("%-28s %s%n", k, v instanceof Double x ? String.format("%.3f", x) : v));
            }
        }
        return 0;
    }
}
