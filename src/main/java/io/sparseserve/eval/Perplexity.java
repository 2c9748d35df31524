package io.sparseserve.eval;

import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.backend.Step;
import io.sparseserve.engine.BlockTable;
import io.sparseserve.engine.KvBlockAllocator;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import java.util.function.IntConsumer;

/**
 * Perplexity with the SparseGPT evaluation protocol: the token ids cut into non-overlapping windows of seqLen
 * (the tail dropped), each window evaluated from an empty cache, perplexity = exp(mean over windows of the mean
 * next-token negative log-likelihood). Several windows run in one forward step so the matrix kernels see many
 * tokens at once; log-sum-exp runs in double.
 */
public final class Perplexity {
    private Perplexity() {}

    /** Bound on the logits buffer of one step, in floats (64 MB). */
    private static final int MAX_LOGIT_FLOATS = 16 << 20;
    private static final int MAX_STEP_TOKENS = 2048;

    public record Result(double perplexity, int windows, long tokens, double seconds, double meanNll) {}

    /**
     * @param maxWindows 0 for all windows
     * @param progress   called with the number of windows done after each step
     */
    public static Result evaluate(Model model, RunnerFactory runners, int[] ids, int seqLen, int maxWindows, IntConsumer progress) {
        var c = model.config();
        if (seqLen < 2) throw new InvalidInputException("--seq-len must be at least 2, got " + seqLen);
        if (seqLen > c.maxPositions()) {
            throw new InvalidInputException("--seq-len " + seqLen + " exceeds the model's context length " + c.maxPositions());
        }
        int windows = ids.length / seqLen;
        if (maxWindows > 0) windows = Math.min(windows, maxWindows);
        if (windows == 0) {
            throw new InvalidInputException("the text has " + ids.length + " tokens, fewer than one window of " + seqLen);
        }
        int perStep = Math.max(1, Math.min(windows,
                Math.min(MAX_STEP_TOKENS, MAX_LOGIT_FLOATS / c.vocab()) / seqLen));
        long start = System.nanoTime();
        double nllSum = 0;
        try (ModelRunner runner = runners.open(model, RunnerConfig.forSequences(perStep * seqLen, perStep, seqLen))) {
            KvBlockAllocator blocks = new KvBlockAllocator(runner.kvBlocks());
            Step batch = new Step(perStep * seqLen, perStep);
            BlockTable[] tables = new BlockTable[perStep];
            for (int i = 0; i < perStep; i++) tables[i] = new BlockTable(blocks, runner.blockSize());
            float[] logits = new float[perStep * seqLen * c.vocab()];
            for (int w0 = 0; w0 < windows; w0 += perStep) {
                int count = Math.min(perStep, windows - w0);
                batch.clear();
                for (int i = 0; i < count; i++) {
                    tables[i].ensure(seqLen);
                    // Every token is given text, a prompt token (Step): over sparse weights, the prompt kernel.
                    batch.add(ids, (w0 + i) * seqLen, seqLen, 0, tables[i].blocks(), tables[i].blockCount(),
                            Step.Output.ALL_LOGITS, Integer.MAX_VALUE);
                }
                runner.forward(batch, logits, null);
                for (int i = 0; i < count; i++) {
                    nllSum += windowNll(logits, i * seqLen, ids, (w0 + i) * seqLen, seqLen, c.vocab());
                    tables[i].release();
                }
                if (progress != null) progress.accept(w0 + count);
            }
        }
        double mean = nllSum / windows;
        double seconds = (System.nanoTime() - start) / 1e9;
        return new Result(Math.exp(mean), windows, (long) windows * seqLen, seconds, mean);
    }

    /** Mean negative log-likelihood of tokens 1..len-1 of a window given the logits rows 0..len-2. */
    static double windowNll(float[] logits, int row0, int[] ids, int from, int len, int vocab) {
        double sum = 0;
        for (int i = 0; i < len - 1; i++) {
            int o = (row0 + i) * vocab;
            sum += logSumExp(logits, o, vocab) - logits[o + ids[from + i + 1]];
        }
        return sum / (len - 1);
    }

    public static double logSumExp(float[] x, int o, int n) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) max = Math.max(max, x[o + i]);
        double s = 0;
        for (int i = 0; i < n; i++) s += Math.exp(x[o + i] - max);
        return max + Math.log(s);
    }
}
