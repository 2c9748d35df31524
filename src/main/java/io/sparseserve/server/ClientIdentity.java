package io.sparseserve.server;

import io.vertx.core.MultiMap;
import io.vertx.core.net.SocketAddress;

/**
 * Who a client is, for fair admission and {@code --max-running-per-client} (the engine's slots are shared between
 * clients) and {@code --max-connections-per-client}: the IP address of the connection's peer.
 *
 * <p>Not the API key: one shared key is configured, so every authorised caller would be the same client. Not
 * {@code X-Forwarded-For} by default: any client can send that header with any value, and would then pose as many
 * clients (or as the victim). Behind a reverse proxy every caller has the proxy's address; an operator whose proxy
 * sets a header with the caller's address names it with {@code --client-id-header} (e.g. {@code X-Forwarded-For},
 * whose last entry is the address the proxy itself saw, the one entry a caller cannot forge; nginx's
 * {@code X-Real-IP}). The port is left out: connections from one host are one client.
 */
final class ClientIdentity {
    private final String header;

    /** @param header a header set by a trusted proxy, or null to use the peer address only */
    ClientIdentity(String header) {
        this.header = header;
    }

    /** The client of a request that came over a connection from {@code peer}, with {@code headers}. */
    String of(SocketAddress peer, MultiMap headers) {
        if (header != null) {
            String v = headers.get(header);
            if (v != null) {
                String last = v.substring(v.lastIndexOf(',') + 1).strip();
                if (!last.isEmpty() && last.length() <= 64) return last;
            }
        }
        return peer(peer);
    }

    /** A connection's peer address without its port ("unknown" for none, e.g. a closed connection). */
    static String peer(SocketAddress peer) {
        if (peer == null) return "unknown";
        String host = peer.hostAddress();
        return host != null ? host : peer.toString();
    }
}
