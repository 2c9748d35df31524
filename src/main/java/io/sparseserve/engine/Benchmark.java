package io.sparseserve.engine;

import io.sparseserve.backend.Backend;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.ModelWeights;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Decode and prefill speed of a model on a backend, measured on random token ids (the speed does not depend on
 * the text). Decode is timed per step after warm-up; prefill is one step over the whole prompt.
 */
public final class Benchmark {
    private final Model model;
    private final Backend ops;
    private final ModelConfig c;

    public Benchmark(Model model, Backend ops) {
        this.model = model;
        this.ops = ops;
        this.c = model.config();
    }

    public record Decode(int batch, int steps, double seconds, double tokensPerSecond, long bytesPerStep) {}

    public record Prefill(int tokens, double seconds, double tokensPerSecond, double flops) {}

    /** {@code batch} sequences decoding together for {@code steps} steps after a short prompt each. */
    public Decode decode(int batch, int steps, int warmup) {
        int prompt = 8;
        int context = prompt + warmup + steps;
        if (context > c.maxPositions()) {
            throw new io.sparseserve.model.InvalidInputException("--new-tokens " + steps + " plus warm-up exceeds the context length "
                    + c.maxPositions());
        }
        Transformer tf = new Transformer(model, ops, Math.max(batch * prompt, batch));
        KvCache cache = KvCache.forTokens(c, batch * (context + KvCache.DEFAULT_BLOCK_SIZE));
        Batch b = new Batch(Math.max(batch * prompt, batch), batch);
        float[] logits = new float[batch * c.vocab()];
        SplittableRandom rnd = new SplittableRandom(1);
        BlockTable[] tables = new BlockTable[batch];
        int[][] ids = new int[batch][context];
        for (int s = 0; s < batch; s++) {
            tables[s] = cache.newTable();
            tables[s].ensure(context);
            for (int i = 0; i < context; i++) ids[s][i] = rnd.nextInt(c.vocab());
            b.add(ids[s], 0, prompt, 0, tables[s], false);
        }
        tf.forward(b, cache, logits);
        long t0 = 0;
        for (int step = 0; step < warmup + steps; step++) {
            if (step == warmup) t0 = System.nanoTime();
            b.clear();
            for (int s = 0; s < batch; s++) b.add(ids[s], prompt + step, 1, prompt + step, tables[s], false);
            tf.forward(b, cache, logits);
        }
        double secs = (System.nanoTime() - t0) / 1e9;
        for (BlockTable t : tables) t.release();
        return new Decode(batch, steps, secs, batch * steps / secs, streamedBytesPerStep());
    }

    /** One step over a prompt of {@code tokens} tokens, best of {@code repeats}. */
    public Prefill prefill(int tokens, int repeats) {
        if (tokens > c.maxPositions()) {
            throw new io.sparseserve.model.InvalidInputException("prefill of " + tokens + " tokens exceeds the context length "
                    + c.maxPositions());
        }
        Transformer tf = new Transformer(model, ops, tokens);
        KvCache cache = KvCache.forTokens(c, tokens + KvCache.DEFAULT_BLOCK_SIZE);
        Batch b = new Batch(tokens, 1);
        float[] logits = new float[c.vocab()];
        int[] ids = new SplittableRandom(2).ints(tokens, 0, c.vocab()).toArray();
        BlockTable table = cache.newTable();
        table.ensure(tokens);
        double best = Double.MAX_VALUE;
        for (int r = 0; r < repeats; r++) {
            b.clear();
            b.add(ids, 0, tokens, 0, table, false);
            long t0 = System.nanoTime();
            tf.forward(b, cache, logits);
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
