package io.sparseserve.backend;

/**
 * How big a runner's steps and KV cache are: what its caller needs, independent of the device.
 *
 * @param maxStepTokens tokens one step carries at most (sizes the activations)
 * @param maxStepSequences sequences one step carries at most
 * @param blockSize positions per KV block
 * @param kv how many KV blocks to hold
 */
public record RunnerConfig(int maxStepTokens, int maxStepSequences, int blockSize, KvCapacity kv) {
    /** Positions per KV block unless told otherwise: 16, as vLLM's default. */
    public static final int DEFAULT_BLOCK_SIZE = 16;

    public RunnerConfig {
        if (maxStepTokens < 1) throw new IllegalArgumentException("maxStepTokens must be >= 1, got " + maxStepTokens);
        if (maxStepSequences < 1 || maxStepSequences > maxStepTokens) {
            throw new IllegalArgumentException("maxStepSequences must be in [1, maxStepTokens], got " + maxStepSequences);
        }
        if (blockSize < 1) throw new IllegalArgumentException("blockSize must be >= 1, got " + blockSize);
        java.util.Objects.requireNonNull(kv, "kv");
    }

    /** One sequence of up to {@code tokens} positions, run in steps of up to {@code stepTokens} tokens. */
    public static RunnerConfig forSequence(int stepTokens, int tokens) {
        return forSequences(stepTokens, 1, tokens);
    }

    /** {@code sequences} sequences of up to {@code tokensEach} positions each, in steps of up to {@code stepTokens}. */
    public static RunnerConfig forSequences(int stepTokens, int sequences, int tokensEach) {
        int blocksEach = (tokensEach + DEFAULT_BLOCK_SIZE - 1) / DEFAULT_BLOCK_SIZE;
        return new RunnerConfig(Math.max(stepTokens, sequences), sequences, DEFAULT_BLOCK_SIZE,
                new KvCapacity.Blocks(Math.max(1, sequences * blocksEach)));
    }
}
