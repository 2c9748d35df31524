package io.sparseserve.server;

import io.grpc.Grpc;
import io.grpc.ManagedChannel;
import io.grpc.TlsChannelCredentials;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/** Clients that trust the self-signed test certificate, as {@code grpcurl -cacert cert.pem} does. */
final class TlsClients {
    static final Path CERT = Path.of("src/test/resources/tls/cert.pem");
    static final Path KEY = Path.of("src/test/resources/tls/key.pem");

    private TlsClients() {}

    static ManagedChannel channel(int port) {
        try {
            return Grpc.newChannelBuilderForAddress("127.0.0.1", port,
                    TlsChannelCredentials.newBuilder().trustManager(CERT.toFile()).build()).build();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** An SSL context for the JDK HTTP client that trusts only the test certificate. */
    static SSLContext sslContext() {
        try (InputStream in = Files.newInputStream(CERT)) {
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            trust.setCertificateEntry("test", CertificateFactory.getInstance("X.509").generateCertificate(in));
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext ctx = SSLContext.getInstance("TLS");
            ctx.init(null, tmf.getTrustManagers(), null);
            return ctx;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException(e);
        }
    }
}
