package io.sparseserve.prune;

import io.sparseserve.backend.Backend;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.backend.cpu.KvCache;
import io.sparseserve.backend.cpu.Transformer;
import io.sparseserve.engine.BlockTable;
import io.sparseserve.engine.KvBlockAllocator;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Pattern;

/**
 * One-shot pruning of a whole model, layer by layer as the SparseGPT reference's {@code llama.py} / {@code opt.py}
 * drive it (not "true sequential"): the calibration samples go through the embeddings; then for each decoder layer,
 * the layer runs on all samples while every linear's Hessian H = (2/n) Σ x xᵀ accumulates from its inputs; each linear
 * is pruned (its weights rounded back to their stored dtype); and the pruned layer runs again on the same inputs to
 * produce the next layer's inputs. Memory: the activations of all samples at one point of the model, one layer's
 * Hessians and the pruned weights (held compressed).
 *
 * <p>The linears reading the same input (q, k and v; gate and up) share one Hessian and one factorization of its
 * inverse: the reference computes identical copies of both.
 *
 * <p>Two runs agree to floating-point noise, not bit for bit: {@link HessianInverse} sums vector lanes with
 * {@code reduceLanes(ADD)}, whose order may change once the JIT compiles it, so the factorizations differ in the last
 * bits from run to run (the CPU kernels' activations no longer do: {@code backend.cpu.Lanes}); a near-tie in a mask choice can then flip, and later layers see slightly
 * different inputs. Measured on the bundled model, SparseGPT 2:4 three times with one build: perplexity 33.403, 33.414
 * and 33.414.
 */
public final class LayerwisePruner {

    /** Tokens per forward step during calibration: several samples per batch keep the matrix kernels busy. */
    static final int STEP_TOKENS = 2048;

    public enum Method {
        SPARSEGPT, MAGNITUDE, WANDA;

        public boolean needsCalibration() {
            return this != MAGNITUDE;
        }

        public String cliName() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }

    /**
     * @param ignore linears whose module name this matches (anywhere: {@code find}) stay untouched; null for none
     */
    public record Options(Method method, SparsityPattern pattern, int blocksize, double percdamp, Pattern ignore) {}

    /**
     * One pruned linear. error = ‖(W − Ŵ) X‖²_F summed over the calibration tokens (X its inputs in this run),
     * relativeError = error / ‖W X‖²_F; both NaN without calibration.
     */
    public record LinearReport(int layer, String name, int rows, int cols, double sparsity, double error,
                               double relativeError, double seconds, double damp, int dampRetries) {}

    /**
     * One decoder layer: its linears, all seconds spent on it, and of those the calibration run that accumulated the
     * Hessians and the rerun of the pruned layer.
     */
    public record LayerReport(int layer, List<LinearReport> linears, double seconds, double calibrationSeconds,
                              double rerunSeconds) {
        public double sparsity() {
            double zeros = 0, all = 0;
            for (LinearReport r : linears) {
                zeros += r.sparsity() * r.rows() * r.cols();
                all += (double) r.rows() * r.cols();
            }
            return all == 0 ? 0 : zeros / all;
        }

        public double error() {
            double sum = 0;
            for (LinearReport r : linears) sum += r.error();
            return sum;
        }
    }

    /** Progress and per-layer reports as the run goes. */
    public interface Listener {
        default void start(int totalSteps) {}

        default void step(int done) {}

        default void layerDone(LayerReport report) {}
    }

    /**
     * @param pruned       module name ("model.layers.0.self_attn.q_proj") to its pruned weight, compressed (2:4 as
     *                     {@link NmMatrix}, anything else as {@link BitmaskMatrix}), in model order
     * @param ignored      module names of decoder linears left untouched by --ignore
     * @param zeros        zero elements in the pruned matrices
     * @param elements     elements of the pruned matrices
     */
    public record Result(Map<String, WeightMatrix> pruned, List<String> ignored, List<LayerReport> layers, long zeros,
                         long elements, double seconds) {
        public double sparsity() {
            return elements == 0 ? 0 : (double) zeros / elements;
        }
    }

    private final Model model;
    private final ModelConfig c;
    private final Backend ops;
    private final Options o;
    private final Listener listener;
    private final Workspace ws = new Workspace();
    private int stepsDone;

    private LayerwisePruner(Model model, Backend ops, Options o, Listener listener) {
        this.model = model;
        this.c = model.config();
        this.ops = ops;
        this.o = o;
        this.listener = listener == null ? new Listener() {} : listener;
    }

    /** Prunes the decoder linears of {@code model}; {@code calibration} may be null for magnitude pruning. */
    public static Result run(Model model, Calibration calibration, Backend ops, Options o, Listener listener) {
        return new LayerwisePruner(model, ops, o, listener).run(calibration);
    }

    private Result run(Calibration cal) {
        long start = System.nanoTime();
        boolean calibrate = o.method().needsCalibration();
        if (calibrate && cal == null) throw new IllegalArgumentException(o.method().cliName() + " needs calibration samples");
        Activations acts = calibrate ? new Activations(cal) : null;
        try {
            return run(acts, start);
        } finally {
            if (acts != null) acts.cache.close(); // its native KV memory
        }
    }

    private Result run(Activations acts, long start) {
        boolean calibrate = acts != null;
        List<Layer> layers = model.weights().layers();
        int linears = 0;
        for (Layer layer : layers) linears += targets(layer).size();
        listener.start((calibrate ? acts.batches * (1 + 2 * layers.size() - 1) : 0) + linears);

        if (calibrate) acts.embed();
        Map<String, WeightMatrix> pruned = new LinkedHashMap<>();
        List<String> ignored = new ArrayList<>();
        List<LayerReport> reports = new ArrayList<>();
        long zeros = 0, elements = 0;
        for (int l = 0; l < layers.size(); l++) {
            long t0 = System.nanoTime();
            Layer layer = layers.get(l);
            List<Linear> targets = targets(layer);
            for (Linear lin : layer.linears()) if (!targets.contains(lin)) ignored.add(lin.name());
            Map<Linear, Hessian> hessians = calibrate && !targets.isEmpty() ? acts.hessians(layer, targets) : Map.of();
            double calibrationSeconds = (System.nanoTime() - t0) / 1e9;
            if (calibrate && targets.isEmpty()) listener.step(stepsDone += acts.batches);
            // Linears sharing a Hessian come one after another: one factorization (in the workspace) serves them all.
            Hessian factored = null;
            HessianInverse.Factor factor = null;
            Map<String, WeightMatrix> replaced = new LinkedHashMap<>();
            List<LinearReport> linearReports = new ArrayList<>();
            for (Linear lin : targets) {
                long t1 = System.nanoTime();
                WeightMatrix wm = lin.weight();
                int rows = wm.rows(), cols = wm.cols();
                int size = rows * cols;
                float[] w = ws.floats("linear.w", size);
                wm.decode(0, rows, 0, cols, w, 0);
                float[] original = null;
                if (calibrate) {
                    original = ws.floats("linear.original", size);
                    System.arraycopy(w, 0, original, 0, size);
                }
                Hessian h = hessians.get(lin);
                double damp = Double.NaN;
                int retries = 0;
                switch (o.method()) {
                    case SPARSEGPT -> {
                        if (h != factored) {
                            factor = HessianInverse.of(h.values(), cols, o.percdamp(), lin.name(), ws);
                            factored = h;
                        }
                        SparseGpt.Result r = SparseGpt.prune(w, rows, cols, factor, o.pattern(), o.blocksize(), ws);
                        damp = r.damp();
                        retries = r.dampRetries();
                    }
                    case WANDA -> Wanda.prune(w, rows, cols, diagonal(h), o.pattern(), ws);
                    case MAGNITUDE -> Magnitude.prune(w, rows, cols, o.pattern(), ws);
                }
                long z = 0;
                for (int i = 0; i < size; i++) {
                    w[i] = DTypeConvert.round(w[i], wm.dtype());
                    if (w[i] == 0f) z++;
                }
                double[] err = h == null ? new double[] {Double.NaN, Double.NaN} : reconstructionError(original, w, rows, cols, h);
                WeightMatrix stored = store(w, rows, cols, wm.dtype());
                replaced.put(lin.name(), stored);
                pruned.put(lin.name(), stored);
                zeros += z;
                elements += (long) rows * cols;
                linearReports.add(new LinearReport(l, lin.name(), rows, cols, (double) z / size, err[0], err[1],
                        (System.nanoTime() - t1) / 1e9, damp, retries));
                listener.step(++stepsDone);
            }
            hessians = null;
            Layer prunedLayer = layer.withLinears(lin -> replaced.containsKey(lin.name())
                    ? new Linear(lin.name(), replaced.get(lin.name()), lin.bias()) : lin);
            long t2 = System.nanoTime();
            if (calibrate && l < layers.size() - 1) acts.run(prunedLayer, null, true);
            long t3 = System.nanoTime();
            LayerReport report = new LayerReport(l, linearReports, (t3 - t0) / 1e9, calibrationSeconds, (t3 - t2) / 1e9);
            reports.add(report);
            listener.layerDone(report);
        }
        return new Result(pruned, ignored, reports, zeros, elements, (System.nanoTime() - start) / 1e9);
    }

    private List<Linear> targets(Layer layer) {
        List<Linear> out = new ArrayList<>();
        for (Linear lin : layer.linears()) {
            if (o.ignore() == null || !o.ignore().matcher(lin.name()).find()) out.add(lin);
        }
        return out;
    }

    /** Pruned weights are held compressed from here on: the rerun and the writer read them as they are stored. */
    private WeightMatrix store(float[] w, int rows, int cols, DType dtype) {
        if (o.pattern() instanceof SparsityPattern.NM nm && nm.n() == 2 && nm.m() == 4) {
            return NmMatrix.fromDense(w, rows, cols, 2, 4, dtype);
        }
        return BitmaskMatrix.fromDense(w, rows, cols, dtype);
    }

    private static double[] diagonal(Hessian h) {
        int n = h.cols();
        double[] d = new double[n];
        for (int i = 0; i < n; i++) d[i] = h.values()[i * n + i];
        return d;
    }

    /**
     * {‖(W − Ŵ) X‖²_F, that / ‖W X‖²_F} over the calibration inputs, from the Hessian: Σ_r δ_rᵀ H δ_r = (2/n) ‖ΔX‖²_F,
     * with δ H for all rows as one matrix product on the backend (float32; this is a report, not part of the algorithm).
     */
    private double[] reconstructionError(float[] original, float[] pruned, int rows, int cols, Hessian h) {
        float[] hf = ws.floats("error.h", cols * cols);
        double[] hv = h.values();
        for (int i = 0; i < cols * cols; i++) hf[i] = (float) hv[i];
        DenseMatrix hm = new DenseMatrix(MemorySegment.ofArray(hf).asSlice(0, 4L * cols * cols), DType.F32, cols, cols);
        int size = rows * cols;
        float[] delta = ws.floats("error.delta", size);
        for (int i = 0; i < size; i++) delta[i] = original[i] - pruned[i];
        double scale = h.samples() / 2.0;
        double err = quadratic(hm, delta, rows, cols) * scale;
        double ref = quadratic(hm, original, rows, cols) * scale;
        return new double[] {err, ref == 0 ? Double.NaN : err / ref};
    }

    /** Σ_r a_r · (H a_r) for the rows of a. */
    private double quadratic(DenseMatrix hm, float[] a, int rows, int cols) {
        int size = rows * cols;
        float[] y = ws.floats("error.y", size);
        ops.matmul(hm, a, 0, rows, y, 0, null);
        double s = 0;
        for (int i = 0; i < size; i++) s += (double) a[i] * y[i];
        return s;
    }

    /** The calibration samples' hidden states at the current point of the model, and the runs that advance them. */
    private final class Activations {
        final Calibration cal;
        final int seqLen, perBatch, batches;
        final float[][] hidden;
        final Transformer tf;
        final KvCache cache;
        final Step batch;
        final BlockTable[] tables;
        final float[] x;
        final Hessian.Scratch scratch = new Hessian.Scratch();
        int currentSequences; // of the batch being run, for the Hessians' running mean
        final Map<Integer, Hessian> pool = new java.util.HashMap<>();

        Activations(Calibration cal) {
            this.cal = cal;
            this.seqLen = cal.seqLen();
            if (seqLen > c.maxPositions()) {
                throw new io.sparseserve.model.InvalidInputException("--seq-len " + seqLen
                        + " exceeds the model's context length " + c.maxPositions());
            }
            this.perBatch = Math.max(1, Math.min(cal.nsamples(), STEP_TOKENS / seqLen));
            this.batches = (cal.nsamples() + perBatch - 1) / perBatch;
            this.hidden = new float[cal.nsamples()][seqLen * c.hidden()];
            this.tf = new Transformer(model, ops, perBatch * seqLen);
            // Pruning runs one layer at a time on the CPU Transformer: a cache of one layer serves them all.
            int blockSize = RunnerConfig.DEFAULT_BLOCK_SIZE;
            int blocksPerSeq = (seqLen + blockSize - 1) / blockSize;
            this.cache = new KvCache(1, c.kvHeads(), c.headDim(), blockSize, perBatch * blocksPerSeq);
            this.batch = new Step(perBatch * seqLen, perBatch);
            this.tables = new BlockTable[perBatch];
            KvBlockAllocator blocks = new KvBlockAllocator(cache.blocks());
            for (int i = 0; i < perBatch; i++) tables[i] = new BlockTable(blocks, blockSize);
            this.x = new float[perBatch * seqLen * c.hidden()];
        }

        private int fill(int b) {
            int first = b * perBatch, count = Math.min(perBatch, cal.nsamples() - first);
            batch.clear();
            for (int i = 0; i < count; i++) {
                tables[i].release();
                tables[i].ensure(seqLen);
                batch.add(cal.samples()[first + i], 0, seqLen, 0, tables[i].blocks(), tables[i].blockCount(),
                        Step.Output.LAST_LOGITS);
            }
            return count;
        }

        void embed() {
            int width = seqLen * c.hidden();
            for (int b = 0; b < batches; b++) {
                int count = fill(b);
                tf.embed(batch, x);
                for (int i = 0; i < count; i++) System.arraycopy(x, i * width, hidden[b * perBatch + i], 0, width);
                listener.step(++stepsDone);
            }
        }

        /** Runs {@code layer} over all samples; keeps its outputs as the new hidden states when {@code advance}. */
        void run(Layer layer, Transformer.LinearInputs observer, boolean advance) {
            int width = seqLen * c.hidden();
            for (int b = 0; b < batches; b++) {
                int count = fill(b);
                for (int i = 0; i < count; i++) System.arraycopy(hidden[b * perBatch + i], 0, x, i * width, width);
                currentSequences = count;
                tf.layer(layer, batch, cache, 0, x, observer);
                if (advance) for (int i = 0; i < count; i++) System.arraycopy(x, i * width, hidden[b * perBatch + i], 0, width);
                listener.step(++stepsDone);
            }
        }

        /**
         * Runs the (dense) layer over all samples and returns each target linear's Hessian. The Hessians are reused
         * from layer to layer (one per input of the layer, by the position of its first reader), reset first.
         */
        Map<Linear, Hessian> hessians(Layer layer, List<Linear> targets) {
            Map<Linear, Hessian> byLinear = new IdentityHashMap<>();
            Map<Linear, Hessian> byFirstReader = new IdentityHashMap<>();
            List<Linear> order = layer.linears();
            run(layer, (readers, input, tokens) -> {
                if (readers.stream().noneMatch(targets::contains)) return;
                Hessian h = byFirstReader.computeIfAbsent(readers.getFirst(), k -> {
                    int cols = k.weight().cols();
                    Hessian pooled = pool.get(order.indexOf(k));
                    if (pooled == null || pooled.cols() != cols) pool.put(order.indexOf(k), pooled = new Hessian(cols));
                    pooled.reset();
                    return pooled;
                });
                h.add(ops, input, tokens, currentSequences, scratch);
                for (Linear r : readers) if (targets.contains(r)) byLinear.put(r, h);
            }, false);
            return byLinear;
        }
    }
}
