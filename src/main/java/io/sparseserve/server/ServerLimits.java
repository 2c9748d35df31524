package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import java.time.Duration;

/**
 * Bounds that keep careless or hostile clients from holding the server: open connections (in all, and from one
 * client address), concurrent HTTP/2 streams per connection, how long a connection may sit idle, how long a stream
 * may go without its client reading, and the tokenizer's worker pool (threads and queued prompts; more are refused
 * with RESOURCE_EXHAUSTED / 429). {@code clientHeader} names a header set by a trusted reverse proxy that carries the
 * client's address (null: the peer address of the connection; see {@link ClientIdentity}).
 */
public record ServerLimits(int maxConnections, int maxStreamsPerConnection, Duration idleTimeout,
        Duration streamIdleTimeout, int tokenizerThreads, int tokenizerQueue, int maxConnectionsPerClient,
        String clientHeader) {

    public static ServerLimits defaults() {
        return new ServerLimits(512, 100, Duration.ofSeconds(300), Duration.ofSeconds(60), 2, 64, 0, null);
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
        if (maxConnectionsPerClient < 0) {
            throw new InvalidInputException("--max-connections-per-client must be >= 0 (0 = half of --max-connections), got "
                    + maxConnectionsPerClient);
        }
        if (clientHeader != null && !clientHeader.matches("[A-Za-z0-9-]+")) {
            throw new InvalidInputException("--client-id-header must be a header name ([A-Za-z0-9-]+), got '" + clientHeader + "'");
        }
    }

    /**
     * Connections one client address may hold (0 configured: half of --max-connections, so that one address alone
     * can never take every connection).
     */
    public int connectionsPerClient() {
        return maxConnectionsPerClient > 0 ? Math.min(maxConnectionsPerClient, maxConnections) : Math.max(1, maxConnections / 2);
    }

    public ServerLimits withStreamIdleTimeout(Duration d) {
        return new ServerLimits(maxConnections, maxStreamsPerConnection, idleTimeout, d, tokenizerThreads, tokenizerQueue,
                maxConnectionsPerClient, clientHeader);
    }

    public ServerLimits withTokenizer(int threads, int queue) {
        return new ServerLimits(maxConnections, maxStreamsPerConnection, idleTimeout, streamIdleTimeout, threads, queue,
                maxConnectionsPerClient, clientHeader);
    }

    public ServerLimits withConnections(int connections, int streams, Duration idle) {
        return new ServerLimits(connections, streams, idle, streamIdleTimeout, tokenizerThreads, tokenizerQueue,
                maxConnectionsPerClient, clientHeader);
    }

    public ServerLimits withClients(int connectionsPerClient, String header) {
        return new ServerLimits(maxConnections, maxStreamsPerConnection, idleTimeout, streamIdleTimeout, tokenizerThreads,
                tokenizerQueue, connectionsPerClient, header);
    }
}
