package io.sparseserve.engine;

/**
 * Log-probabilities of the model's next-token distribution (log-softmax of the raw logits) for the chosen token
 * and the {@code ids.length} most likely tokens, most likely first (ties: lower id first).
 */
public record TopLogprobs(int chosenId, float chosenLogprob, int[] ids, float[] logprobs) {}
