package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import java.time.Duration;

/**
 * Bounds that keep careless or hostile clients from holding the server: open connections, concurrent HTTP/2 streams
 * per connection, how long a connection may sit idle, how long a stream may go without its client reading, and the
 * tokenizer's worker pool (threads and queued prompts; more are refused with RESOURCE_EXHAUSTED / 429).
 */
public record ServerLimits(int maxConnections, int maxStreamsPerConnection, Duration idleTimeout,
        Duration streamIdleTimeout, int tokenizerThreads, int tokenizerQueue) {

    public static ServerLimits defaults() {
        return new ServerLimits(512, 100, Duration.ofSeconds(300), Duration.ofSeconds(60), 2, 64);
    }

    public ServerLimits {
        if (maxConnections < 1) throw new InvalidInputException("--max-connections must be >= 1, got " + maxConnections);
        if (maxStreamsPerConnection < 1) {
            throw new InvalidInputException("--max-streams-per-connection must be >= 1, got " + maxStreamsPerConnection);
        }
        if (idleTimeout.isNegative() || idleTimeout.isZero()) throw new InvalidInputException("--idle-timeout must be > 0 seconds");
        if (streamIdleTimeout.isNegative() || streamIdleTimeout.isZero()) {
            throw new InvalidInputException("--stream-idle-timeout must be > 0 seconds");
        }
        if (tokenizerThreads < 1) throw new InvalidInputException("--tokenizer-threads must be >= 1, got " + tokenizerThreads);
        if (tokenizerQueue < 0) throw new InvalidInputException("--tokenizer-queue must be >= 0, got " + tokenizerQueue);
    }

    public ServerLimits withStreamIdleTimeout(Duration d) {
        return new ServerLimits(maxConnections, maxStreamsPerConnection, idleTimeout, d, tokenizerThreads, tokenizerQueue);
    }

    public ServerLimits withTokenizer(int threads, int queue) {
        return new ServerLimits(maxConnections, maxStreamsPerConnection, idleTimeout, streamIdleTimeout, threads, queue);
    }

    public ServerLimits withConnections(int connections, int streams, Duration idle) {
        return new ServerLimits(connections, streams, idle, streamIdleTimeout, tokenizerThreads, tokenizerQueue);
    }
}
