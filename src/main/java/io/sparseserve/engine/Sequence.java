package io.sparseserve.engine;

import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One request inside the engine: its tokens so far, its KV-cache blocks, its sampler and the text it has not yet
 * delivered. Everything except the volatile flags belongs to the scheduler thread. The per-token logic is the same
 * as {@link Generator}'s, so a sequence produces exactly the tokens the {@code generate} command does.
 */
final class Sequence implements Engine.Handle {
    final GenerationRequest request;
    final TokenSink sink;
    final long arrivalNanos;
    final int promptLength;
    /** The prompt, then the generated ids. */
    final int[] tokens;
    /** Tokens known: prompt plus generated. */
    int length;
    /** Tokens whose keys and values are in the cache; 0 again after a preemption. */
    int computed;
    final BlockTable table;
    /** Whose sequence this is, for fair admission and the per-client limits. */
    final Clients.Client client;
    boolean admitted;
    long scheduledNanos = -1;
    long firstTokenNanos = -1;
    long lastTokenNanos;
    int preemptions;

    private final Engine engine;
    private final Sampler sampler;
    private final IncrementalDetokenizer detokenizer;
    private final StopMatcher stop;
    private final int[] eosIds;
    private final Tokenizer tokenizer;
    private final StringBuilder pendingText = new StringBuilder();
    private int pendingFrom; // index in tokens of the first id not yet delivered
    private List<TopLogprobs> pendingLogprobs = List.of();

    volatile boolean cancelled;
    volatile boolean paused;

    Sequence(Engine engine, GenerationRequest request, TokenSink sink, BlockTable table, Sampler.Scratch scratch,
             ModelConfig config, Tokenizer tokenizer, long arrivalNanos, Clients.Client client) {
        this.engine = engine;
        this.client = client;
        this.request = request;
        this.sink = java.util.Objects.requireNonNull(sink, "sink");
        this.table = table;
        this.arrivalNanos = arrivalNanos;
        this.promptLength = request.promptIds().length;
        this.tokens = Arrays.copyOf(request.promptIds(), promptLength + request.maxNewTokens());
        this.length = promptLength;
        this.pendingFrom = promptLength;
        this.sampler = new Sampler(request.sampling(), config.vocab(), scratch);
        sampler.acceptPrompt(request.promptIds());
        this.detokenizer = IncrementalDetokenizer.create(tokenizer, request.promptIds());
        this.stop = new StopMatcher(request.stop());
        this.eosIds = config.eosTokenIds();
        this.tokenizer = tokenizer;
    }

    int generated() {
        return length - promptLength;
    }

    @Override
    public void cancel() {
        cancelled = true;
        engine.wake();
    }

    @Override
    public void pause() {
        paused = true;
    }

    @Override
    public void resume() {
        paused = false;
        engine.wake();
    }

    /**
     * Samples the next token from the logits row at {@code offset}, delivers the text that became final and returns
     * why the sequence finished, or null when it goes on.
     */
    FinishReason advance(float[] logits, int offset, long now, EngineObserver observer) {
        return advance(sampleNext(logits, offset), logits, offset, now, observer);
    }

    /**
     * True when the next token is the plain argmax of the logits and nothing else reads them: greedy, no penalties,
     * no logprobs, and no end token to suppress (min_new_tokens reached). The runner may then return the argmax only.
     */
    boolean argmaxSuffices() {
        SamplingParams p = request.sampling();
        return p.isGreedy() && !p.hasPenalties() && request.logprobs() < 0 && generated() >= request.minNewTokens();
    }

    /**
     * Takes {@code next} (sampled from the logits row at {@code offset}, or the runner's argmax when
     * {@link #argmaxSuffices}: then logits may be null), delivers the text that became final and returns why the
     * sequence finished, or null when it goes on.
     */
    FinishReason advance(int next, float[] logits, int offset, long now, EngineObserver observer) {
        sampler.accept(next);
        TopLogprobs lp = request.logprobs() >= 0 ? sampler.topLogprobs(logits, offset, request.logprobs(), next) : null;
        tokens[length++] = next;
        if (firstTokenNanos < 0) {
            firstTokenNanos = now;
            observer.onFirstToken(now - arrivalNanos);
        } else {
            observer.onNextToken(now - lastTokenNanos);
        }
        lastTokenNanos = now;
        if (lp != null) {
            if (pendingLogprobs.isEmpty()) pendingLogprobs = new ArrayList<>(2);
            pendingLogprobs.add(lp);
        }
        int generated = generated();
        boolean stopAllowed = generated >= request.minNewTokens();
        FinishReason reason = null;
        if ((!request.ignoreEos() && contains(eosIds, next)) || contains(request.stopTokenIds(), next)) {
            // As Generator: an end token ends the text without being decoded into it.
            reason = FinishReason.EOS_TOKEN;
            pendingText.append(stop.add(detokenizer.flush(), stopAllowed)).append(stop.flush());
        } else {
            pendingText.append(stop.add(decode(next), stopAllowed));
            if (stop.matched()) {
                reason = FinishReason.STOP_SEQUENCE;
            } else if (generated == request.maxNewTokens()) {
                pendingText.append(stop.add(detokenizer.flush(), stopAllowed));
                reason = stop.matched() ? FinishReason.STOP_SEQUENCE : FinishReason.LENGTH;
                pendingText.append(stop.flush());
            }
        }
        if (reason == null) sink.onDelta(takeDelta(now));
        return reason;
    }

    /**
     * The text of a new id. A model's vocabulary can be larger than its tokenizer's (padded embedding rows, or a
     * synthetic model): such an id has no text, as in vLLM's detokenizer, and must not end the stream with an error.
     * Special tokens have none either unless the request keeps them.
     */
    private String decode(int id) {
        if (tokenizer.token(id) == null) return "";
        // Skipped special tokens never reach the detokenizer, as in vLLM's incremental detokenization.
        if (request.skipSpecialTokens() && tokenizer.isSpecial(id)) return "";
        return detokenizer.add(id);
    }

    /** The output not yet delivered, as one delta. */
    TokenSink.Delta takeDelta(long now) {
        TokenSink.Delta d = new TokenSink.Delta(pendingText.toString(), Arrays.copyOfRange(tokens, pendingFrom, length),
                pendingLogprobs, now);
        pendingText.setLength(0);
        pendingFrom = length;
        pendingLogprobs = List.of();
        return d;
    }

    /**
     * The sampler's choice, with end-of-sequence and stop token ids suppressed before min_new_tokens (Hugging Face's
     * MinNewTokensLengthLogitsProcessor: their logits become -inf for the draw, and are restored afterwards).
     */
    private int sampleNext(float[] logits, int offset) {
        if (generated() >= request.minNewTokens()) return sampler.sample(logits, offset);
        int[] ids = request.ignoreEos() ? request.stopTokenIds() : concat(eosIds, request.stopTokenIds());
        float[] saved = new float[ids.length];
        for (int i = 0; i < ids.length; i++) {
            saved[i] = logits[offset + ids[i]];
            logits[offset + ids[i]] = Float.NEGATIVE_INFINITY;
        }
        try {
            return sampler.sample(logits, offset);
        } finally {
            for (int i = ids.length - 1; i >= 0; i--) logits[offset + ids[i]] = saved[i];
        }
    }

    private static int[] concat(int[] a, int[] b) {
        int[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    private static boolean contains(int[] ids, int id) {
        for (int x : ids) if (x == id) return true;
        return false;
    }
}
