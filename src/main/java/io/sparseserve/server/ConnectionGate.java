package io.sparseserve.server;

import io.netty.channel.Channel;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.time.Duration;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Counts TCP connections as they are accepted, before a byte is read (Vert.x's connection handler runs only once a
 * connection has sent enough to tell HTTP/1.1 from HTTP/2, so a silent connection was never counted), and closes a
 * new one at once when --max-connections are open, or when its peer address already holds
 * --max-connections-per-client (so one host's flood of silent connections cannot lock every other client out).
 * Called by {@link GatedTransport} on the acceptor thread; the counts drop when a connection closes.
 */
final class ConnectionGate {
    private static final Logger log = LoggerFactory.getLogger(ConnectionGate.class);

    private final int max;
    private final int perClient;
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicLong refused = new AtomicLong();
    private final ConcurrentHashMap<String, Integer> byClient = new ConcurrentHashMap<>();
    private final RateLimitedLog limitLog = new RateLimitedLog(log, Duration.ofMinutes(1));

    ConnectionGate(int max, int perClient) {
        this.max = max;
        this.perClient = perClient;
    }

    /** A connection just accepted: true to keep it (its counts drop when it closes), false to close it now. */
    boolean admit(Channel ch) {
        String client = peer(ch.remoteAddress());
        if (open.incrementAndGet() > max) {
            open.decrementAndGet();
            refuse("connection limit reached: {} open (--max-connections); closing new ones", max);
            return false;
        }
        if (byClient.merge(client, 1, Integer::sum) > perClient) {
            drop(client);
            open.decrementAndGet();
            refuse("per-client connection limit reached: {} open from one address (--max-connections-per-client); "
                    + "closing its new ones", perClient);
            return false;
        }
        ch.closeFuture().addListener(f -> {
            drop(client);
            open.decrementAndGet();
        });
        return true;
    }

    private void drop(String client) {
        byClient.computeIfPresent(client, (k, n) -> n == 1 ? null : n - 1);
    }

    private void refuse(String message, int limit) {
        refused.incrementAndGet();
        limitLog.warn(message, limit);
    }

    private static String peer(SocketAddress a) {
        return a instanceof InetSocketAddress i && i.getAddress() != null ? i.getAddress().getHostAddress() : String.valueOf(a);
    }

    int open() {
        return open.get();
    }

    long refused() {
        return refused.get();
    }

    /** Distinct peer addresses with open connections (the map forgets an address with its last connection). */
    int clients() {
        return byClient.size();
    }
}
