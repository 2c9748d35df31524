package io.sparseserve.cli;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.backend.cpu.CpuBackend;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelWeights;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.prune.Calibration;
import io.sparseserve.prune.LayerwisePruner;
import io.sparseserve.prune.LayerwisePruner.LayerReport;
import io.sparseserve.prune.LayerwisePruner.LinearReport;
import io.sparseserve.prune.LayerwisePruner.Method;
import io.sparseserve.prune.PrunedModelWriter;
import io.sparseserve.prune.PrunedModelWriter.Layout;
import io.sparseserve.prune.SparsityPattern;
import io.sparseserve.tensor.MemoryStats;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "prune", mixinStandardHelpOptions = true,
        description = "One-shot pruning of a model's decoder linears (SparseGPT, Wanda or magnitude), layer by layer on "
                + "calibration text; writes the pruned model compressed (sparse-bitmask / sparse-24-bitmask) or dense.")
final class PruneCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "Output model folder.")
    Path out;

    @Option(names = "--method", required = true, paramLabel = "M", description = "sparsegpt, wanda or magnitude.")
    String method;

    @Option(names = "--sparsity", paramLabel = "S", description = "Unstructured: fraction removed, 0 <= S < 1 (default 0.5).")
    Double sparsity;

    @Option(names = "--pattern", paramLabel = "N:M", description = "Semi-structured: keep N of every M weights (e.g. 2:4).")
    String pattern;

    @Option(names = "--calibration", paramLabel = "FILE", description = "UTF-8 calibration text (sparsegpt and wanda).")
    Path calibration;

    @Option(names = "--nsamples", defaultValue = "128", description = "Calibration windows (default 128).")
    int nsamples;

    @Option(names = "--seq-len", paramLabel = "N", description = "Tokens per calibration window (default: the model's context length).")
    Integer seqLen;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of the window offsets (Python random.seed semantics).")
    long seed;

    @Option(names = "--blocksize", defaultValue = "128", description = "SparseGPT column block (default 128).")
    int blocksize;

    @Option(names = "--percdamp", defaultValue = "0.01", description = "SparseGPT dampening, fraction of mean(diag H) (default 0.01).")
    double percdamp;

    @Option(names = "--ignore", paramLabel = "REGEX", description = "Leave linears whose module name matches (anywhere) dense.")
    String ignore;

    @Option(names = "--format", defaultValue = "sparse", description = "sparse (compressed-tensors layouts) or dense (exact zeros).")
    String format;

    @Option(names = "--force", description = "Replace the output folder if it exists.")
    boolean force;

    @Option(names = "--json", description = "Print one JSON object summarising the run.")
    boolean json;

    @Override
    public Integer call() throws IOException {
        Method m = parseMethod();
        SparsityPattern sp = SparsityPattern.of(sparsity, pattern);
        Layout layout = switch (format.toLowerCase(Locale.ROOT)) {
            case "sparse" -> Layout.SPARSE;
            case "dense" -> Layout.DENSE;
            default -> throw new InvalidInputException("--format must be sparse or dense, got '" + format + "'");
        };
        if (blocksize < 1) throw new InvalidInputException("--blocksize must be at least 1, got " + blocksize);
        if (sp instanceof SparsityPattern.NM nm && blocksize % nm.m() != 0) {
            throw new InvalidInputException("--blocksize " + blocksize + " must be a multiple of M = " + nm.m() + " for --pattern " + nm);
        }
        if (!(percdamp >= 0) || !Double.isFinite(percdamp)) throw new InvalidInputException("--percdamp must be >= 0, got " + percdamp);
        if (nsamples < 1) throw new InvalidInputException("--nsamples must be at least 1, got " + nsamples);
        Pattern ignorePattern = compileIgnore();
        Path modelDir = model.dir.toAbsolutePath().normalize();
        Path target = out.toAbsolutePath().normalize();
        if (target.equals(modelDir) || modelDir.startsWith(target)) {
            throw new InvalidInputException("--out " + out + " would overwrite the model being pruned");
        }
        if (Files.exists(target) && !force) throw new InvalidInputException(out + ": already exists (use --force to replace it)");
        String text = null;
        if (m.needsCalibration()) {
            if (calibration == null) throw new InvalidInputException("--method " + m.cliName() + " needs --calibration FILE");
            text = EvalCommand.readText(calibration);
            if (text.isBlank()) throw new InvalidInputException(calibration + ": the calibration text is empty");
        }

        long start = System.nanoTime();
        try (Model mdl = model.load()) {
            checkShapes(mdl, sp, ignorePattern);
            int len = seqLen == null ? mdl.config().maxPositions() : seqLen;
            if (len < 1 || len > mdl.config().maxPositions()) {
                throw new InvalidInputException("--seq-len must be in [1, " + mdl.config().maxPositions()
                        + "] (the model's context length), got " + len);
            }
            Calibration cal = null;
            if (m.needsCalibration()) {
                try (Tokenizer tok = model.tokenizer()) {
                    int[] ids = tok.encode(text);
                    try {
                        cal = Calibration.sample(ids, nsamples, len, seed);
                    } catch (InvalidInputException e) {
                        throw new InvalidInputException(calibration + ": " + e.getMessage());
                    }
                }
            }
            var options = new LayerwisePruner.Options(m, sp, blocksize, percdamp, ignorePattern);
            LayerwisePruner.Result result = LayerwisePruner.run(mdl, cal, new CpuBackend(Math.max(1, len)), options,
                    new Reporter(!json, spec.commandLine().getErr()));
            long writeStart = System.nanoTime();
            PrunedModelWriter.write(mdl, result.pruned(), result.ignored(), sp.structure(), result.sparsity(),
                    provenance(m, sp, cal), layout, out, force);
            double writeSeconds = (System.nanoTime() - writeStart) / 1e9;
            double seconds = (System.nanoTime() - start) / 1e9;
            report(m, sp, layout, cal, result, seconds, writeSeconds);
        }
        return 0;
    }

    private Method parseMethod() {
        for (Method m : Method.values()) if (m.cliName().equals(method.toLowerCase(Locale.ROOT))) return m;
        throw new InvalidInputException("--method must be sparsegpt, wanda or magnitude, got '" + method + "'");
    }

    private Pattern compileIgnore() {
        if (ignore == null) return null;
        try {
            return Pattern.compile(ignore);
        } catch (PatternSyntaxException e) {
            throw new InvalidInputException("--ignore is not a valid regular expression: " + e.getDescription() + " in '"
                    + ignore + "'");
        }
    }

    /** N:M needs every pruned matrix's columns to be a multiple of M: say which one is not before any work. */
    private static void checkShapes(Model mdl, SparsityPattern sp, Pattern ignore) {
        if (!(sp instanceof SparsityPattern.NM nm)) return;
        for (ModelWeights.Layer layer : mdl.weights().layers()) {
            for (ModelWeights.Linear lin : layer.linears()) {
                if (ignore != null && ignore.matcher(lin.name()).find()) continue;
                int cols = lin.weight().cols();
                if (cols % nm.m() != 0) {
                    throw new InvalidInputException("--pattern " + nm + ": " + lin.name() + " has " + cols
                            + " input columns, not a multiple of M = " + nm.m());
                }
            }
        }
    }

    private ObjectNode provenance(Method m, SparsityPattern sp, Calibration cal) {
        ObjectNode p = JsonNodeFactory.instance.objectNode();
        p.put("tool", "sparse-serve prune");
        p.put("method", m.cliName());
        p.put("sparsity_structure", sp.structure());
        p.put("target_sparsity", sp.sparsity());
        if (cal != null) {
            p.put("calibration", calibration.getFileName().toString());
            p.put("nsamples", cal.nsamples());
            p.put("seq_len", cal.seqLen());
            p.put("seed", seed);
        }
        if (m == Method.SPARSEGPT) {
            p.put("blocksize", blocksize);
            p.put("percdamp", percdamp);
        }
        if (ignore != null) p.put("ignore", ignore);
        return p;
    }

    private void report(Method m, SparsityPattern sp, Layout layout, Calibration cal, LayerwisePruner.Result r,
                        double seconds, double writeSeconds) {
        long peakRss = MemoryStats.peakResidentBytes();
        PrintWriter stdout = spec.commandLine().getOut();
        if (json) {
            Map<String, Object> o = new LinkedHashMap<>();
            o.put("method", m.cliName());
            o.put("pattern", sp.toString());
            o.put("sparsity", r.sparsity());
            o.put("format", layout.name().toLowerCase(Locale.ROOT));
            o.put("out", out.toString());
            o.put("nsamples", cal == null ? 0 : cal.nsamples());
            o.put("seq_len", cal == null ? 0 : cal.seqLen());
            o.put("seed", seed);
            o.put("linears", r.pruned().size());
            o.put("ignored", r.ignored());
            o.put("seconds", seconds);
            o.put("prune_seconds", r.seconds());
            o.put("write_seconds", writeSeconds);
            o.put("peak_rss_bytes", peakRss);
            List<Map<String, Object>> layers = new ArrayList<>();
            for (LayerReport lr : r.layers()) {
                Map<String, Object> l = new LinkedHashMap<>();
                l.put("layer", lr.layer());
                l.put("sparsity", lr.sparsity());
                l.put("error", finite(lr.error()));
                l.put("seconds", lr.seconds());
                l.put("calibration_seconds", lr.calibrationSeconds());
                l.put("rerun_seconds", lr.rerunSeconds());
                List<Map<String, Object>> lins = new ArrayList<>();
                for (LinearReport li : lr.linears()) {
                    Map<String, Object> x = new LinkedHashMap<>();
                    x.put("name", li.name());
                    x.put("shape", List.of(li.rows(), li.cols()));
                    x.put("sparsity", li.sparsity());
                    x.put("error", finite(li.error()));
                    x.put("relative_error", finite(li.relativeError()));
                    x.put("seconds", li.seconds());
                    lins.add(x);
                }
                l.put("linears", lins);
                layers.add(l);
            }
            o.put("layers", layers);
            Json.print(stdout, o);
        } else {
            stdout.printf("pruned %d linears with %s %s to sparsity %.4f in %.1f s (writing %.1f s), peak RSS %.0f MiB; wrote %s%n",
                    r.pruned().size(), m.cliName(), sp, r.sparsity(), seconds, writeSeconds, peakRss / 1048576.0, out);
        }
    }

    private static Double finite(double v) {
        return Double.isFinite(v) ? v : null;
    }

    /** Progress bar plus one line per finished layer on stderr. */
    private static final class Reporter implements LayerwisePruner.Listener {
        private final boolean bar;
        private final PrintWriter err;
        private ProgressBar progress;

        Reporter(boolean bar, PrintWriter err) {
            this.bar = bar;
            this.err = err;
        }

        @Override
        public void start(int totalSteps) {
            progress = new ProgressBar("prune", totalSteps, bar);
        }

        @Override
        public void step(int done) {
            progress.accept(done);
        }

        @Override
        public void layerDone(LayerReport r) {
            double maxRel = 0;
            for (LinearReport li : r.linears()) if (Double.isFinite(li.relativeError())) maxRel = Math.max(maxRel, li.relativeError());
            String error = Double.isNaN(r.error()) ? "-" : String.format("%.4g (worst relative %.4f)", r.error(), maxRel);
            err.printf("\rlayer %d: %d linears, sparsity %.4f, reconstruction error %s, %.1f s (calibration %.1f s, rerun %.1f s)%s%n",
                    r.layer(), r.linears().size(), r.sparsity(), error, r.seconds(), r.calibrationSeconds(), r.rerunSeconds(),
                    " ".repeat(8));
            err.flush();
        }
    }
}
