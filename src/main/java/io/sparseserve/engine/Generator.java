package io.sparseserve.engine;

import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.backend.Step;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.Tokenizer;
import java.util.Arrays;
import java.util.function.Consumer;

/**
 * Generates text for one prompt: prefill in chunks, then one decode step per token with the sampler, streaming
 * text pieces that never split a UTF-8 character. The command line's {@code generate}; the server batches many
 * sequences with its scheduler instead.
 */
public final class Generator {
    private static final int PREFILL_CHUNK = 512;

    private final Model model;
    private final Tokenizer tokenizer;
    private final RunnerFactory runners;

    /** Each {@link #generate} opens a runner from {@code runners} sized for its prompt and closes it after. */
    public Generator(Model model, Tokenizer tokenizer, RunnerFactory runners) {
        this.model = model;
        this.tokenizer = tokenizer;
        this.runners = runners;
    }

    public enum FinishReason { LENGTH, EOS_TOKEN }

    public record Result(String text, int[] promptIds, int[] tokenIds, FinishReason finishReason) {}

    /** Checks a request before any work: sampling parameters, token ids and the context length. */
    public void validate(int[] promptIds, SamplingParams params, int maxNewTokens) {
        ModelConfig c = model.config();
        params.validate();
        if (promptIds.length == 0) throw new InvalidInputException("prompt must not be empty");
        if (maxNewTokens < 1) throw new InvalidInputException("max_new_tokens must be >= 1, got " + maxNewTokens);
        for (int id : promptIds) {
            if (id < 0 || id >= c.vocab()) throw new InvalidInputException("prompt token id " + id + " is outside the vocabulary [0, " + c.vocab() + ")");
        }
        int total = promptIds.length + maxNewTokens;
        if (total > c.maxPositions()) {
            throw new InvalidInputException("prompt (" + promptIds.length + " tokens) plus max_new_tokens (" + maxNewTokens
                    + ") exceeds the context length " + c.maxPositions());
        }
    }

    public Result generate(int[] promptIds, SamplingParams params, int maxNewTokens, boolean ignoreEos,
                           Consumer<String> onText) {
        return generate(promptIds, params, maxNewTokens, ignoreEos, true, onText);
    }

    /**
     * Generates after {@code promptIds}; with {@code skipSpecialTokens} the text leaves special tokens out (vLLM's
     * default). Ids without a token string (a padded vocabulary's extra rows) add no text.
     */
    public Result generate(int[] promptIds, SamplingParams params, int maxNewTokens, boolean ignoreEos,
                           boolean skipSpecialTokens, Consumer<String> onText) {
        validate(promptIds, params, maxNewTokens);
        int total = promptIds.length + maxNewTokens;
        int chunk = Math.min(PREFILL_CHUNK, promptIds.length);
        try (ModelRunner runner = runners.open(model, RunnerConfig.forSequence(chunk, total))) {
            return generate(runner, chunk, promptIds, params, maxNewTokens, ignoreEos, skipSpecialTokens, onText);
        }
    }

    private Result generate(ModelRunner runner, int chunk, int[] promptIds, SamplingParams params, int maxNewTokens,
                            boolean ignoreEos, boolean skipSpecialTokens, Consumer<String> onText) {
        ModelConfig c = model.config();
        int total = promptIds.length + maxNewTokens;
        BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
        table.ensure(total);
        Step batch = new Step(chunk, 1);
        float[] logits = new float[c.vocab()];
        int[] argmax = new int[1];
        int[] seq = Arrays.copyOf(promptIds, total);
        // Greedy without penalties needs only the argmax: a GPU then copies back one id per step.
        boolean argmaxOnly = params.isGreedy() && !params.hasPenalties();
        Step.Output output = argmaxOnly ? Step.Output.LAST_ARGMAX : Step.Output.LAST_LOGITS;

        for (int from = 0; from < promptIds.length; from += chunk) {
            batch.clear();
            batch.add(seq, from, Math.min(chunk, promptIds.length - from), from, table.blocks(), table.blockCount(), output,
                    promptIds.length);
            runner.forward(batch, logits, argmax);
        }
        Sampler sampler = new Sampler(params, c.vocab());
        sampler.acceptPrompt(promptIds);
        IncrementalDetokenizer detok = IncrementalDetokenizer.create(tokenizer, promptIds);
        StringBuilder text = new StringBuilder();
        FinishReason reason = FinishReason.LENGTH;
        int generated = 0;
        while (generated < maxNewTokens) {
            int next = argmaxOnly ? argmax[0] : sampler.sample(logits, 0);
            sampler.accept(next);
            int pos = promptIds.length + generated;
            seq[pos] = next;
            generated++;
            if (!ignoreEos && isEos(c, next)) {
                reason = FinishReason.EOS_TOKEN;
                break;
            }
            boolean silent = tokenizer.token(next) == null || (skipSpecialTokens && tokenizer.isSpecial(next));
            if (!silent) emit(detok.add(next), text, onText);
            if (generated == maxNewTokens) break;
            batch.clear();
            batch.add(seq, pos, 1, pos, table.blocks(), table.blockCount(), output, promptIds.length);
            runner.forward(batch, logits, argmax);
        }
        emit(detok.flush(), text, onText);
        table.release();
        return new Result(text.toString(), promptIds, Arrays.copyOfRange(seq, promptIds.length, promptIds.length + generated), reason);
    }

    static boolean isEos(ModelConfig c, int id) {
        for (int e : c.eosTokenIds()) if (e == id) return true;
        return false;
    }

    private static void emit(String piece, StringBuilder text, Consumer<String> onText) {
        if (piece.isEmpty()) return;
        text.append(piece);
        if (onText != null) onText.accept(piece);
    }
}
