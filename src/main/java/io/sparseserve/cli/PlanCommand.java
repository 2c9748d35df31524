package io.sparseserve.cli;

import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.plan.ByteSize;
import io.sparseserve.plan.GpuModel;
import io.sparseserve.plan.MemoryPlan;
import io.sparseserve.plan.MemoryPlanner;
import io.sparseserve.plan.ModelShape;
import io.sparseserve.plan.WeightFormat;
import io.sparseserve.tensor.DType;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.stream.Collectors;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "plan", mixinStandardHelpOptions = true,
        description = "How many GPUs a model needs, dense and pruned, and which layers each GPU holds: weights in the "
                + "format they are served in, KV cache for --concurrency sequences of --context tokens, a per-GPU overhead.")
final class PlanCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "PATH",
            description = "A model folder, or a bare config.json (then give --dtype unless it has torch_dtype).")
    Path model;

    static final class Format {
        @Option(names = "--dense", description = "Plan the dense model only.") boolean dense;
        @Option(names = "--sparsity", paramLabel = "S", description = "Unstructured sparse-bitmask at sparsity S (e.g. 0.5).") Double sparsity;
        @Option(names = "--pattern", paramLabel = "N:M", description = "Semi-structured N:M (e.g. 2:4).") String pattern;
    }

    @ArgGroup(exclusive = true, multiplicity = "0..1")
    Format format;

    static final class Gpu {
        @Option(names = "--gpu-memory", paramLabel = "SIZE", description = "Memory of one GPU: 80GiB, 80GB, bytes.") String memory;
        @Option(names = "--gpu", paramLabel = "NAME", description = "a100-80g, a100-40g, h100-80g or h200.") String name;
    }

    @ArgGroup(exclusive = true, multiplicity = "1")
    Gpu gpu;

    @Option(names = "--dtype", paramLabel = "D", description = "Weight dtype: f32, f16, bf16 (default: the config's torch_dtype).")
    String dtype;

    @Option(names = "--kv-dtype", paramLabel = "D", description = "KV-cache dtype: f32, f16, bf16 (default: the weight dtype).")
    String kvDtype;

    @Option(names = "--context", paramLabel = "N", description = "Tokens per sequence (default: max_position_embeddings).")
    Integer context;

    @Option(names = "--concurrency", defaultValue = "1", paramLabel = "C",
            description = "Sequences of --context tokens whose KV cache must fit (default ${DEFAULT-VALUE}).")
    int concurrency;

    @Option(names = "--gpu-memory-utilization", defaultValue = "0.9", paramLabel = "F",
            description = "Fraction of each GPU's memory to use (default ${DEFAULT-VALUE}).")
    double utilization;

    @Option(names = "--overhead", defaultValue = "2GiB", paramLabel = "SIZE",
            description = "Per-GPU memory that is neither weights nor KV: CUDA context, cuBLAS workspace, activations, "
                    + "graphs (default ${DEFAULT-VALUE}, an estimate).")
    String overhead;

    @Option(names = "--gpus", paramLabel = "N",
            description = "Split over exactly N GPUs (at least one layer each, the largest share as small as possible): "
                    + "the split a server given N devices (--device cuda:0,1,...) uses without --layer-split.")
    Integer gpus;

    @Option(names = "--json", description = "Print one JSON object.")
    boolean json;

    @Override
    public Integer call() {
        ModelShape shape = ModelShape.read(model);
        DType weights = dtype != null ? weightType("--dtype", dtype) : shape.dtype();
        if (weights == null) throw new InvalidInputException(model + ": the config has no torch_dtype; give --dtype f16|bf16|f32");
        DType kv = kvDtype != null ? weightType("--kv-dtype", kvDtype) : weights;
        long gpuBytes = gpu.name != null ? GpuModel.of(gpu.name).bytes() : ByteSize.parse("--gpu-memory", gpu.memory);
        MemoryPlanner planner = new MemoryPlanner(shape, weights, kv, gpuBytes, utilization,
                ByteSize.parse("--overhead", overhead), context != null ? context : shape.maxPositions(), concurrency,
                RunnerConfig.DEFAULT_BLOCK_SIZE);
        List<MemoryPlan> plans = formats(shape).stream().map(f -> gpus != null ? planner.split(f, gpus) : planner.plan(f)).toList();
        PrintWriter out = spec.commandLine().getOut();
        if (json) {
            Map<String, Object> r = json(shape, planner, plans);
            if (gpus != null) r.put("split_gpus", gpus);
            Json.print(out, r);
        }
        else table(out, shape, planner, plans);
        return 0;
    }

    /** Dense always, for comparison; then the format asked for, the folder's own, or both 50% bitmask and 2:4. */
    private List<WeightFormat> formats(ModelShape shape) {
        List<WeightFormat> list = new ArrayList<>(List.of(new WeightFormat.Dense()));
        if (format != null && format.dense) return list;
        if (format != null && format.sparsity != null) list.add(new WeightFormat.Bitmask(format.sparsity));
        else if (format != null && format.pattern != null) list.add(WeightFormat.pattern(format.pattern));
        else if (shape.sparsity() != null) list.add(shape.sparsity());
        else list.addAll(List.of(new WeightFormat.Bitmask(0.5), new WeightFormat.Nm(2, 4)));
        return list;
    }

    private static DType weightType(String option, String text) {
        try {
            return DType.parse(text);
        } catch (IllegalArgumentException e) {
            throw new InvalidInputException(option + " must be f32, f16 or bf16, got '" + text + "'", e);
        }
    }

    private static Map<String, Object> json(ModelShape s, MemoryPlanner p, List<MemoryPlan> plans) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("model", s.name());
        r.put("family", s.family());
        r.put("layers", s.layers());
        r.put("hidden", s.hidden());
        r.put("dtype", p.dtype().name().toLowerCase(Locale.ROOT));
        r.put("kv_dtype", p.kvDtype().name().toLowerCase(Locale.ROOT));
        r.put("tie_word_embeddings", s.tieEmbeddings());
        r.put("context", p.context());
        r.put("concurrency", p.concurrency());
        r.put("gpu_memory_bytes", p.gpuBytes());
        r.put("gpu_memory_utilization", p.utilization());
        r.put("overhead_bytes_per_gpu", p.overheadBytes());
        r.put("usable_bytes_per_gpu", p.usableBytes());
        r.put("kv_bytes_per_token", p.kvBytesPerToken());
        r.put("kv_bytes_per_token_per_layer", p.kvBytesPerTokenPerLayer());
        List<Map<String, Object>> rows = new ArrayList<>();
        for (MemoryPlan plan : plans) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("format", plan.format().name());
            if (plan.format() instanceof WeightFormat.Bitmask b) m.put("sparsity", b.sparsity());
            if (plan.format() instanceof WeightFormat.Nm nm) m.put("pattern", nm.n() + ":" + nm.m());
            m.put("linear_bytes_per_layer", plan.linearBytesPerLayer());
            m.put("linear_dense_bytes_per_layer", plan.linearDenseBytesPerLayer());
            m.put("linear_ratio", plan.linearRatio());
            m.put("layer_bytes", plan.layerBytes());
            m.put("embedding_bytes", plan.embeddingBytes());
            m.put("head_bytes", plan.headBytes());
            m.put("weight_bytes", plan.weightBytes());
            m.put("kv_tokens_per_sequence", plan.kvTokensPerSequence());
            m.put("gpus", plan.gpus());
            m.put("fits", plan.stages().stream().allMatch(st -> st.freeBytes() >= 0));
            m.put("layer_split", plan.stages().stream().map(st -> String.valueOf(st.layers())).collect(Collectors.joining(",")));
            m.put("max_sequences", plan.maxSequences());
            List<Map<String, Object>> stages = new ArrayList<>();
            for (MemoryPlan.Stage st : plan.stages()) {
                Map<String, Object> g = new LinkedHashMap<>();
                g.put("gpu", st.gpu());
                g.put("layers", List.of(st.firstLayer(), st.endLayer()));
                g.put("embeddings", st.embeddings());
                g.put("head", st.head());
                g.put("weight_bytes", st.weightBytes());
                g.put("kv_bytes", st.kvBytes());
                g.put("free_bytes", st.freeBytes());
                g.put("sequences", st.sequences() == Long.MAX_VALUE ? null : st.sequences());
                stages.add(g);
            }
            m.put("stages", stages);
            rows.add(m);
        }
        r.put("plans", rows);
        return r;
    }

    private static void table(PrintWriter out, ModelShape s, MemoryPlanner p, List<MemoryPlan> plans) {
        out.printf(Locale.ROOT, "%s: %s, %d layers, hidden %d, weights %s, KV %s %,d bytes (%.2f MB) per token%n", s.name(),
                s.family(), s.layers(), s.hidden(), p.dtype().name().toLowerCase(Locale.ROOT),
                p.kvDtype().name().toLowerCase(Locale.ROOT), p.kvBytesPerToken(), p.kvBytesPerToken() / 1e6);
        out.printf(Locale.ROOT, "per GPU: %s x %.2f - %s overhead = %s usable; KV for %d x %d tokens%n%n",
                ByteSize.gib(p.gpuBytes()), p.utilization(), ByteSize.gib(p.overheadBytes()), ByteSize.gib(p.usableBytes()),
                p.concurrency(), p.context());
        out.printf(Locale.ROOT, "%-12s %8s %12s %5s %10s  %s%n", "format", "linear", "weights", "GPUs", "sequences", "layers per GPU");
        for (MemoryPlan plan : plans) {
            String split = plan.stages().stream().map(st -> st.layers() == 0 ? "-" : st.firstLayer() + "-" + (st.endLayer() - 1))
                    .collect(Collectors.joining(" "));
            boolean fits = plan.stages().stream().allMatch(st -> st.freeBytes() >= 0);
            out.printf(Locale.ROOT, "%-12s %8.4f %12s %5d %10s  %s%n", plan.format().label(), plan.linearRatio(),
                    ByteSize.gib(plan.weightBytes()), plan.gpus(), fits ? String.valueOf(plan.maxSequences()) : "does not fit",
                    split);
        }
    }
}
