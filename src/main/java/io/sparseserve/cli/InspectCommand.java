package io.sparseserve.cli;

import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.WeightMatrix;
import io.sparseserve.tensor.ZeroCompression;
import java.util.ArrayList;
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

@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model's configuration and, per weight matrix, its format, dtype, shape, sparsity and bytes; "
                + "with --device, what the runner on that device holds and chose (e.g. the sparse kernel per shape).")
final class InspectCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Mixin DeviceOption device;

    @Option(names = "--json", description = "Print one JSON object.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        RunnerFactory runners = device.runners();
        try (Model m = model.load()) {
            Map<String, Object> runner = describeRunner(runners, m);
            ModelConfig c = m.config();
            List<Map<String, Object>> tensors = new ArrayList<>();
            long linearBytes = 0, linearDense = 0, linearZeros = 0, linearElements = 0;
            for (Model.NamedMatrix nm : m.matrices()) {
                WeightMatrix w = nm.matrix();
                long zeros = w.zeros();
                long elements = (long) w.rows() * w.cols();
                Map<String, Object> t = new LinkedHashMap<>();
                t.put("name", nm.name());
                t.put("format", w.format());
                // What the file stores and what --compress auto found in it (a dense linear with exact zeros).
                ZeroCompression.Scan scan = m.detected().get(nm.name());
                boolean compressedAtLoad = scan != null && !(w instanceof DenseMatrix);
                t.put("stored_format", compressedAtLoad ? "dense" : w.format());
                t.put("compressed_at_load", compressedAtLoad);
                if (scan != null) t.put("detected", scan.fraction() < 0.4 ? "dense" : scan.twoFour() ? "2:4" : "unstructured");
                t.put("dtype", w.dtype().name());
                t.put("shape", List.of(w.rows(), w.cols()));
                t.put("sparsity", (double) zeros / elements);
                t.put("bytes", w.bytes());
                t.put("dense_bytes", w.denseBytes());
                tensors.add(t);
                if (nm.linear()) {
                    linearBytes += w.bytes();
                    linearDense += w.denseBytes();
                    linearZeros += zeros;
                    linearElements += elements;
                }
            }
            double sparsity = linearElements == 0 ? 0 : (double) linearZeros / linearElements;
            if (json) {
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("family", c.family().name().toLowerCase());
                result.put("layers", c.layers());
                result.put("hidden", c.hidden());
                result.put("vocab", c.vocab());
                result.put("context_length", c.maxPositions());
                result.put("weight_bytes", m.weightBytes());
                result.put("dense_equivalent_bytes", m.denseEquivalentBytes());
                result.put("linear_weight_bytes", linearBytes);
                result.put("linear_dense_equivalent_bytes", linearDense);
                result.put("sparsity", sparsity);
                result.put("compressed_at_load", tensors.stream().filter(t -> (boolean) t.get("compressed_at_load")).count());
                result.put("tensors", tensors);
                result.put("runner", runner);
                Json.print(out, result);
            } else {
                out.printf("%s: %s, %d layers, hidden %d, heads %d/%d, head_dim %d, intermediate %d, vocab %d, context %d%n",
                        m.dir(), c.family().name().toLowerCase(), c.layers(), c.hidden(), c.heads(), c.kvHeads(),
                        c.headDim(), c.intermediate(), c.vocab(), c.maxPositions());
                out.printf("%-44s %-18s %-18s %-5s %-14s %8s %12s%n", "matrix", "format", "stored", "dtype", "shape",
                        "sparsity", "bytes");
                for (Map<String, Object> t : tensors) {
                    out.printf("%-44s %-18s %-18s %-5s %-14s %8.4f %12d%n", t.get("name"), t.get("format"),
                            (boolean) t.get("compressed_at_load") ? "dense (--compress auto)" : t.get("stored_format"),
                            t.get("dtype"), t.get("shape"), (double) t.get("sparsity"), (long) t.get("bytes"));
                }
                out.printf("weights %d bytes (dense equivalent %d); linear layers %d bytes (dense %d), sparsity %.4f%n",
                        m.weightBytes(), m.denseEquivalentBytes(), linearBytes, linearDense, sparsity);
                out.println("runner " + runner);
            }
        }
        return 0;
    }

    /**
     * Opens a runner on the device for one-token steps and one KV block (the least it can hold: nothing sized for
     * serving) and returns what it says of itself and its memory by kind.
     */
    private static Map<String, Object> describeRunner(RunnerFactory runners, Model m) {
        try (ModelRunner r = runners.open(m, new RunnerConfig(1, 1, RunnerConfig.DEFAULT_BLOCK_SIZE, new KvCapacity.Blocks(1)))) {
            Map<String, Object> d = new LinkedHashMap<>(r.describe());
            var mem = r.memory();
            d.put("memory_weights_bytes", mem.weights());
            d.put("memory_kv_bytes", mem.kv());
            d.put("memory_workspace_bytes", mem.workspace());
            d.put("memory_total_bytes", mem.total());
            return d;
        }
    }
}
