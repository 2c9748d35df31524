package io.sparseserve.engine;

import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.Tokenizer;
import java.util.List;

/**
 * One request to generate text after a prompt, in engine terms (token ids, not text). {@link #validate} checks it
 * against the model before the engine accepts it; every problem is reported with the request field's name and the
 * allowed range, so the server can pass the message to the client as it is.
 *
 * @param requestId a label for logs and responses (not necessarily unique)
 * @param promptIds the prompt, each id in the vocabulary
 * @param sampling how to pick tokens
 * @param maxNewTokens stop after this many tokens ({@link FinishReason#LENGTH})
 * @param minNewTokens suppress end-of-sequence, stop token ids and stop strings before this many tokens (as vLLM's
 *     min_tokens)
 * @param stop strings that end the text when they appear, matched across token boundaries; not emitted
 * @param stopTokenIds ids that end the sequence like the end-of-sequence token
 * @param ignoreEos keep going past the model's end-of-sequence token
 * @param logprobs -1: none; n >= 0: the chosen token's log-probability and the n most likely tokens'
 * @param skipSpecialTokens leave special tokens (chat markers, BOS, EOS) out of the text, as vLLM does by default
 */
public record GenerationRequest(String requestId, int[] promptIds, SamplingParams sampling, int maxNewTokens,
        int minNewTokens, List<String> stop, int[] stopTokenIds, boolean ignoreEos, int logprobs,
        boolean skipSpecialTokens) {

    /** A request whose text leaves special tokens out (the default). */
    public GenerationRequest(String requestId, int[] promptIds, SamplingParams sampling, int maxNewTokens,
            int minNewTokens, List<String> stop, int[] stopTokenIds, boolean ignoreEos, int logprobs) {
        this(requestId, promptIds, sampling, maxNewTokens, minNewTokens, stop, stopTokenIds, ignoreEos, logprobs, true);
    }

    public static final int MAX_STOP_STRINGS = 8;
    public static final int MAX_STOP_LENGTH = 256;
    public static final int MAX_STOP_TOKEN_IDS = 64;
    public static final int MAX_LOGPROBS = 20;
    public static final int MAX_REQUEST_ID_LENGTH = 128;

    public GenerationRequest {
        stop = List.copyOf(stop);
    }

    /** Checks every field against the model's context length and the tokenizer's vocabulary; returns this. */
    public GenerationRequest validate(ModelConfig config, Tokenizer tokenizer) {
        if (requestId.length() > MAX_REQUEST_ID_LENGTH) {
            throw new InvalidInputException("request_id must be at most " + MAX_REQUEST_ID_LENGTH + " characters, got "
                    + requestId.length());
        }
        if (promptIds.length == 0) {
            throw new InvalidInputException("prompt must not be empty (set prompt or prompt_token_ids)");
        }
        int vocab = vocabulary(config, tokenizer);
        for (int i = 0; i < promptIds.length; i++) {
            if (!known(promptIds[i], vocab, tokenizer)) {
                throw new InvalidInputException("prompt_token_ids[" + i + "] = " + promptIds[i]
                        + " is not a token id of this model (allowed: 0.." + (vocab - 1) + ")");
            }
        }
        int context = config.maxPositions();
        if (promptIds.length >= context) {
            throw new InvalidInputException("prompt is " + promptIds.length + " tokens; it must be shorter than the context length "
                    + context + " (at most " + (context - 1) + " tokens, to leave room for one new token)");
        }
        if (maxNewTokens < 1 || maxNewTokens > context - 1) {
            throw new InvalidInputException("max_new_tokens must be in [1, " + (context - 1) + "], got " + maxNewTokens);
        }
        if ((long) promptIds.length + maxNewTokens > context) {
            throw new InvalidInputException("max_new_tokens: the prompt (" + promptIds.length + " tokens) plus max_new_tokens ("
                    + maxNewTokens + ") must be at most the context length " + context
                    + " (allowed max_new_tokens for this prompt: at most " + Math.max(0, context - promptIds.length) + ")");
        }
        if (minNewTokens < 0 || minNewTokens > maxNewTokens) {
            throw new InvalidInputException("min_new_tokens must be in [0, max_new_tokens = " + maxNewTokens + "], got "
                    + minNewTokens);
        }
        sampling.validate();
        if (stop.size() > MAX_STOP_STRINGS) {
            throw new InvalidInputException("stop must have at most " + MAX_STOP_STRINGS + " strings, got " + stop.size());
        }
        for (int i = 0; i < stop.size(); i++) {
            String s = stop.get(i);
            if (s.isEmpty()) throw new InvalidInputException("stop[" + i + "] must not be empty");
            if (s.length() > MAX_STOP_LENGTH) {
                throw new InvalidInputException("stop[" + i + "] must be at most " + MAX_STOP_LENGTH + " characters, got "
                        + s.length());
            }
        }
        if (stopTokenIds.length > MAX_STOP_TOKEN_IDS) {
            throw new InvalidInputException("stop_token_ids must have at most " + MAX_STOP_TOKEN_IDS + " ids, got "
                    + stopTokenIds.length);
        }
        for (int i = 0; i < stopTokenIds.length; i++) {
            if (!known(stopTokenIds[i], vocab, tokenizer)) {
                throw new InvalidInputException("stop_token_ids[" + i + "] = " + stopTokenIds[i]
                        + " is not a token id of this model (allowed: 0.." + (vocab - 1) + ")");
            }
        }
        if (logprobs < -1 || logprobs > MAX_LOGPROBS) {
            throw new InvalidInputException("logprobs must be in [0, " + MAX_LOGPROBS + "], got " + logprobs);
        }
        return this;
    }

    /** Ids below both the model's embedding rows and the tokenizer's vocabulary size. */
    public static int vocabulary(ModelConfig config, Tokenizer tokenizer) {
        return Math.min(config.vocab(), tokenizer.vocabSize());
    }

    private static boolean known(int id, int vocab, Tokenizer tokenizer) {
        return id >= 0 && id < vocab && tokenizer.token(id) != null;
    }
}
