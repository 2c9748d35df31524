package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.engine.Engine;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Connections are bounded in number (--max-connections), HTTP/2 streams per connection (announced in SETTINGS) and
 * idle time (--idle-timeout), seen from raw sockets. Paused streams giving their slots and KV blocks back is tested on
 * the engine ({@code PausedSequencesTest}).
 */
class SlowClientsTest {
    /** HTTP/2 with prior knowledge: the client preface and an empty SETTINGS frame. */
    static final byte[] PREFACE;

    static {
        byte[] magic = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
        PREFACE = java.util.Arrays.copyOf(magic, magic.length + 9);
        PREFACE[magic.length + 3] = 4; // type SETTINGS, length 0, no flags, stream 0
    }


    @Test
    void connectionsAreBoundedInNumberStreamsAndIdleTime() throws Exception {
        try (ServerFixture f = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults(), ServerSecurity.NONE,
                ServerLimits.defaults().withConnections(3, 7, Duration.ofSeconds(2)))) {
            f.channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            ServerFixture.await("no connections", Duration.ofSeconds(10), () -> f.server.openConnections() == 0);
            InetAddress lo = InetAddress.getLoopbackAddress();
            List<Socket> held = new ArrayList<>();
            try {
                // HTTP/2 with prior knowledge: the server's SETTINGS announce the stream limit.
                Socket h2 = new Socket(lo, f.port);
                held.add(h2);
                h2.setSoTimeout(10_000);
                OutputStream out = h2.getOutputStream();
                out.write(PREFACE);
                out.flush();
                assertEquals(7, maxConcurrentStreams(new DataInputStream(h2.getInputStream())));
                for (int i = 0; i < 2; i++) {
                    Socket s = new Socket(lo, f.port);
                    held.add(s);
                    s.getOutputStream().write(PREFACE);
                    s.getOutputStream().flush();
                }
                ServerFixture.await("three connections", Duration.ofSeconds(10), () -> f.server.openConnections() == 3);

                // A fourth is closed at once.
                try (Socket fourth = new Socket(lo, f.port)) {
                    fourth.setSoTimeout(10_000);
                    fourth.getOutputStream().write(PREFACE);
                    fourth.getOutputStream().flush();
                    assertTrue(closedOrGoaway(new DataInputStream(fourth.getInputStream())));
                }
                assertTrue(f.server.refusedConnections() >= 1);

                // Connections that stay silent are closed after the idle timeout (2 s here).
                for (Socket s : held) {
                    s.setSoTimeout(30_000);
                    assertTrue(closedOrGoaway(new DataInputStream(s.getInputStream())), "an idle connection stayed open");
                }
                ServerFixture.await("idle connections closed", Duration.ofSeconds(10), () -> f.server.openConnections() == 0);
                assertEquals(200, f.get("/healthz").statusCode());
            } finally {
                for (Socket s : held) s.close();
            }
        }
    }

    /**
     * Reads HTTP/2 frames until the server closes the connection or sends GOAWAY (its announcement that it is
     * closing); false when neither comes within the socket's timeout.
     */
    private static boolean closedOrGoaway(DataInputStream in) {
        try {
            for (int frames = 0; frames < 1000; frames++) {
                int length = (in.readUnsignedByte() << 16) | in.readUnsignedShort();
                int type = in.readUnsignedByte();
                in.readUnsignedByte();
                in.readInt();
                in.readNBytes(length);
                if (type == 7) return true;
            }
            return false;
        } catch (SocketTimeoutException e) {
            return false;
        } catch (IOException e) { // end of stream or reset: closed
            return true;
        }
    }

    /** Reads frames until the server's first SETTINGS frame and returns its SETTINGS_MAX_CONCURRENT_STREAMS. */
    private static long maxConcurrentStreams(DataInputStream in) throws IOException {
        for (int frames = 0; frames < 16; frames++) {
            int length = (in.readUnsignedByte() << 16) | in.readUnsignedShort();
            int type = in.readUnsignedByte();
            int flags = in.readUnsignedByte();
            in.readInt();
            byte[] payload = in.readNBytes(length);
            if (type == 4 && (flags & 1) == 0) {
                for (int i = 0; i + 6 <= payload.length; i += 6) {
                    int id = ((payload[i] & 0xff) << 8) | (payload[i + 1] & 0xff);
                    long value = ((long) (payload[i + 2] & 0xff) << 24) | ((payload[i + 3] & 0xff) << 16)
                            | ((payload[i + 4] & 0xff) << 8) | (payload[i + 5] & 0xff);
                    if (id == 3) return value;
                }
                return -1;
            }
        }
        return -1;
    }
}
