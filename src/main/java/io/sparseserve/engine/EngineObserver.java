package io.sparseserve.engine;

/**
 * Events of the scheduler, with {@link System#nanoTime()} timestamps, for metrics. Called on the scheduler thread;
 * implementations must be quick and must not throw. The engine knows nothing of how they are recorded.
 */
public interface EngineObserver {

    /** A sequence was scheduled for the first time, {@code queueNanos} after it arrived. */
    default void onScheduled(long queueNanos) {}

    /** A sequence produced its first token, {@code ttftNanos} after it arrived. */
    default void onFirstToken(long ttftNanos) {}

    /** A sequence produced another token, {@code gapNanos} after its previous one. */
    default void onNextToken(long gapNanos) {}

    /** A sequence finished normally. */
    default void onFinished(TokenSink.Finished finished) {}

    /** A sequence was cancelled (client gone or deadline passed) after generating {@code completionTokens}. */
    default void onCancelled(int promptTokens, int completionTokens, long e2eNanos) {}

    /** A sequence lost its KV blocks to an older one and will be recomputed. */
    default void onPreempted() {}

    /** One forward step: how many sequences and tokens it carried, and how long the whole step took. */
    default void onStep(int sequences, int tokens, long nanos) {}

    EngineObserver NONE = new EngineObserver() {};
}
