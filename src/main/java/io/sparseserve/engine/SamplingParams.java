package io.sparseserve.engine;

import io.sparseserve.model.InvalidInputException;

/**
 * How to pick each next token, with the semantics of Hugging Face {@code generate} and vLLM (see {@link Sampler}).
 *
 * @param temperature logits are divided by it; 0 means greedy (argmax)
 * @param topK keep the k most likely tokens; 0 turns it off
 * @param topP nucleus: keep the smallest set of most likely tokens whose probability adds up to at least topP
 * @param minP drop tokens less likely than minP times the most likely one; 0 turns it off
 * @param repetitionPenalty for tokens in the prompt or the output: positive logits divided by it, negative ones
 *     multiplied (CTRL, Keskar et al. 2019, as in Hugging Face); 1 turns it off
 * @param presencePenalty subtracted once from the logit of every token already in the output (OpenAI)
 * @param frequencyPenalty subtracted from a token's logit once per time it is already in the output (OpenAI)
 * @param seed seeds the random generator: the same seed, logits and parameters give the same tokens
 */
public record SamplingParams(float temperature, int topK, float topP, float minP, float repetitionPenalty,
        float presencePenalty, float frequencyPenalty, long seed) {

    /** Argmax decoding, no penalties. */
    public static SamplingParams greedy() {
        return new SamplingParams(0f, 0, 1f, 0f, 1f, 0f, 0f, 0L);
    }

    /** Plain sampling at {@code temperature}: no top-k, top-p, min-p or penalties. */
    public static SamplingParams random(float temperature, long seed) {
        return new SamplingParams(temperature, 0, 1f, 0f, 1f, 0f, 0f, seed);
    }

    /**
     * Checks every field and returns this; a bad value is the user's error, reported with the field's name (as in
     * the request) and its allowed range. NaN and infinities are refused everywhere.
     */
    public SamplingParams validate() {
        if (!(temperature >= 0f) || Float.isInfinite(temperature)) {
            throw invalid("temperature", "a finite number >= 0 (0 = greedy)", temperature);
        }
        if (topK < 0) throw invalid("top_k", "an integer >= 0 (0 = off)", topK);
        if (!(topP > 0f && topP <= 1f)) throw invalid("top_p", "in (0, 1] (1 = off)", topP);
        if (!(minP >= 0f && minP < 1f)) throw invalid("min_p", "in [0, 1) (0 = off)", minP);
        if (!(repetitionPenalty > 0f) || Float.isInfinite(repetitionPenalty)) {
            throw invalid("repetition_penalty", "a finite number > 0 (1 = off)", repetitionPenalty);
        }
        if (!(presencePenalty >= -2f && presencePenalty <= 2f)) {
            throw invalid("presence_penalty", "in [-2, 2] (0 = off)", presencePenalty);
        }
        if (!(frequencyPenalty >= -2f && frequencyPenalty <= 2f)) {
            throw invalid("frequency_penalty", "in [-2, 2] (0 = off)", frequencyPenalty);
        }
        return this;
    }

    public boolean isGreedy() {
        return temperature == 0f;
    }

    /** True when logits must be adjusted for the tokens seen so far. */
    public boolean hasPenalties() {
        return repetitionPenalty != 1f || presencePenalty != 0f || frequencyPenalty != 0f;
    }

    private static InvalidInputException invalid(String field, String allowed, Object value) {
        return new InvalidInputException(field + " must be " + allowed + ", got " + value);
    }
}
