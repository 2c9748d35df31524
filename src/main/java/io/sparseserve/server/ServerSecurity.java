package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Who may call, and over what: an API key (null = open), TLS certificate and key files in PEM (both null = plain
 * TCP, h2c for gRPC), and whether {@code /metrics} needs the key too. Health ({@code grpc.health.v1},
 * {@code /healthz}, {@code /readyz}) is always open, for load balancers and orchestrators.
 */
public record ServerSecurity(ApiKeyAuth apiKey, Path tlsCert, Path tlsKey, boolean metricsAuth) {
    public static final ServerSecurity NONE = new ServerSecurity(null, null, null, false);

    public ServerSecurity {
        if ((tlsCert == null) != (tlsKey == null)) throw new InvalidInputException("set both --tls-cert and --tls-key, or neither");
        for (Path p : new Path[] {tlsCert, tlsKey}) {
            if (p != null && !Files.isReadable(p)) throw new InvalidInputException(p + ": not a readable file (--tls-cert/--tls-key)");
        }
        if (metricsAuth && apiKey == null) throw new InvalidInputException("--metrics-auth needs an API key (--api-key or --api-key-file)");
    }

    public boolean tls() {
        return tlsCert != null;
    }
}
