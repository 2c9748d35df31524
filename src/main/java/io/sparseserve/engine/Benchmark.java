package io.sparseserve.engine;

import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.backend.Step;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.ModelWeights;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Decode and prefill speed of a model on a device, measured on random token ids (the speed does not depend on
 * the text). Decode is timed per step after warm-up; prefill is one step over the whole prompt. One runner serves
 * every measurement (a GPU uploads the weights once), sized for the largest batch, decode and prefill asked for.
 */
public final class Benchmark implements AutoCloseable {
    private static final int PROMPT = 8;

    private final Model model;
    private final ModelConfig c;
    private final ModelRunner runner;
    private final KvBlockAllocator blocks;
    private final int maxBatch;
    private final int maxDecodeSteps;
    private final int maxPrefill;

    /**
     * @param maxBatch sequences decoding together at most
     * @param maxDecodeSteps warm-up plus timed decode steps of one {@link #decode} at most
     * @param maxPrefill prompt tokens of one {@link #prefill} at most
     */
    public Benchmark(Model model, RunnerFactory runners, int maxBatch, int maxDecodeSteps, int maxPrefill) {
        this.model = model;
        this.c = model.config();
        this.maxBatch = maxBatch;
        this.maxDecodeSteps = maxDecodeSteps;
        this.maxPrefill = maxPrefill;
        int context = PROMPT + maxDecodeSteps;
        if (context > c.maxPositions()) {
            throw new InvalidInputException("--new-tokens " + maxDecodeSteps + " plus warm-up exceeds the context length "
                    + c.maxPositions());
        }
        if (maxPrefill > c.maxPositions()) {
            throw new InvalidInputException("prefill of " + maxPrefill + " tokens exceeds the context length " + c.maxPositions());
        }
        int bs = RunnerConfig.DEFAULT_BLOCK_SIZE;
        // Decode and prefill never run at once: the KV blocks of the larger serve both.
        int kvBlocks = Math.max(maxBatch * KvSizing.blocksFor(context, bs), KvSizing.blocksFor(maxPrefill, bs));
        this.runner = runners.open(model, new RunnerConfig(Math.max(maxPrefill, maxBatch * PROMPT), maxBatch, bs,
                new KvCapacity.Blocks(kvBlocks)));
        this.blocks = new KvBlockAllocator(runner.kvBlocks());
    }

    public ModelRunner runner() {
        return runner;
    }

    @Override
    public void close() {
        runner.close();
    }

    public record Decode(int batch, int steps, double seconds, double tokensPerSecond, long bytesPerStep) {}

    public record Prefill(int tokens, double seconds, double tokensPerSecond, double flops) {}

    /** {@code batch} sequences decoding together for {@code steps} steps after a short prompt each. */
    public Decode decode(int batch, int steps, int warmup) {
        int prompt = PROMPT;
        int context = prompt + warmup + steps;
        if (batch > maxBatch || warmup + steps > maxDecodeSteps) {
            throw new IllegalArgumentException("decode of " + batch + " x " + (warmup + steps) + " steps exceeds the "
                    + maxBatch + " x " + maxDecodeSteps + " this benchmark was sized for");
        }
        Step b = new Step(Math.max(batch * prompt, batch), batch);
        float[] logits = new float[batch * c.vocab()];
        SplittableRandom rnd = new SplittableRandom(1);
        BlockTable[] tables = new BlockTable[batch];
        int[][] ids = new int[batch][context];
        for (int s = 0; s < batch; s++) {
            tables[s] = new BlockTable(blocks, runner.blockSize());
            tables[s].ensure(context);
            for (int i = 0; i < context; i++) ids[s][i] = rnd.nextInt(c.vocab());
            b.add(ids[s], 0, prompt, 0, tables[s].blocks(), tables[s].blockCount(), Step.Output.LAST_LOGITS, prompt);
        }
        runner.forward(b, logits, null);
        long t0 = 0;
        for (int step = 0; step < warmup + steps; step++) {
            if (step == warmup) t0 = System.nanoTime();
            b.clear();
            for (int s = 0; s < batch; s++) {
                b.add(ids[s], prompt + step, 1, prompt + step, tables[s].blocks(), tables[s].blockCount(),
                        Step.Output.LAST_LOGITS, prompt);
            }
            runner.forward(b, logits, null);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        for (BlockTable t : tables) t.release();
        return new Decode(batch, steps, secs, batch * steps / secs, streamedBytesPerStep());
    }

    /** One step over a prompt of {@code tokens} tokens, best of {@code repeats}. */
    public Prefill prefill(int tokens, int repeats) {
        if (tokens > maxPrefill) {
            throw new IllegalArgumentException("prefill of " + tokens + " tokens exceeds the " + maxPrefill + " this benchmark was sized for");
        }
        Step b = new Step(tokens, 1);
        float[] logits = new float[c.vocab()];
        int[] ids = new SplittableRandom(2).ints(tokens, 0, c.vocab()).toArray();
        BlockTable table = new BlockTable(blocks, runner.blockSize());
        table.ensure(tokens);
        double best = Double.MAX_VALUE;
        for (int r = 0; r < repeats; r++) {
            b.clear();
            b.add(ids, 0, tokens, 0, table.blocks(), table.blockCount(), Step.Output.LAST_LOGITS, tokens);
            long t0 = System.nanoTime();
            runner.forward(b, logits, null);
            best = Math.min(best, (System.nanoTime() - t0) / 1e9);
        }
        table.release();
        return new Prefill(tokens, best, tokens / best, prefillFlops(tokens));
    }

    /** The memory of every matrix a decode step reads ({@link #streamedBytesPerStep} in all), in the order it reads them. */
    public List<MemorySegment> streamedSegments() {
        List<MemorySegment> segments = new ArrayList<>();
        for (ModelWeights.Layer l : model.weights().layers()) {
            for (ModelWeights.Linear lin : l.linears()) segments.addAll(lin.weight().segments());
        }
        segments.addAll(model.weights().lmHead().segments());
        return segments;
    }

    /** Weight bytes one decode step reads: every layer's matrices and the head (the embedding is a row lookup). */
    public long streamedBytesPerStep() {
        long bytes = model.weights().lmHead().bytes();
        for (ModelWeights.Layer l : model.weights().layers()) {
            for (ModelWeights.Linear lin : l.linears()) bytes += lin.weight().bytes();
        }
        return bytes;
    }

    /**
     * Floating-point operations of a prefill: 2 per multiply-add of every linear layer for every token, the head
     * for the last token only, and causal attention (QK^T and PV, 2 x 2 x headDim per head per attended position).
     */
    public double prefillFlops(int tokens) {
        double linear = 0;
        for (ModelWeights.Layer l : model.weights().layers()) {
            for (ModelWeights.Linear lin : l.linears()) linear += (double) lin.weight().rows() * lin.weight().cols();
        }
        double head = (double) c.vocab() * c.hidden();
        double attended = (double) tokens * (tokens + 1) / 2;
        double attention = 4.0 * c.heads() * c.headDim() * attended * c.layers();
        return 2 * linear * tokens + 2 * head + attention;
    }
}
