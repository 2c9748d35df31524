package io.sparseserve.engine;

import java.util.List;

/**
 * Where the engine delivers one sequence's output. Every method is called on the scheduler thread, in order, and
 * must return quickly without blocking (the server hands the event over to the call's own thread). Exactly one of
 * {@link #onFinish} and {@link #onError} ends the stream, unless the sequence was cancelled, which ends it silently.
 */
public interface TokenSink {

    /**
     * One new token: its id (with its log-probabilities when asked for) and the text that became final with it,
     * possibly empty (half of a UTF-8 character, a possible start of a stop string, an id without text).
     */
    void onDelta(Delta delta);

    /** The sequence finished; {@code last} carries the output not yet delivered (possibly empty). */
    void onFinish(Delta last, Finished finished);

    /** The engine could not finish the sequence (an internal error, or shutdown); its blocks are already free. */
    void onError(Throwable error);

    /**
     * @param text new text
     * @param tokenIds new ids
     * @param logprobs per new id, or empty when not asked for
     * @param nanoTime when the last of the ids was sampled ({@link System#nanoTime()})
     */
    record Delta(String text, int[] tokenIds, List<TopLogprobs> logprobs, long nanoTime) {}

    /**
     * How a sequence ended, with the timestamps ({@link System#nanoTime()}) the server turns into latencies.
     *
     * @param arrivalNanos when the engine accepted the request
     * @param scheduledNanos when it was first scheduled (end of its queue time)
     * @param firstTokenNanos when its first token was sampled
     * @param finishedNanos when it finished
     * @param preemptions how often it lost its KV blocks and was recomputed
     */
    record Finished(FinishReason reason, int promptTokens, int completionTokens, long arrivalNanos,
                    long scheduledNanos, long firstTokenNanos, long finishedNanos, int preemptions) {
        public double queueSeconds() {
            return (scheduledNanos - arrivalNanos) / 1e9;
        }

        public double timeToFirstTokenSeconds() {
            return (firstTokenNanos - arrivalNanos) / 1e9;
        }

        public double totalSeconds() {
            return (finishedNanos - arrivalNanos) / 1e9;
        }
    }
}
