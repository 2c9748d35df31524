package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.engine.Engine;
import io.sparseserve.model.Family;
import io.sparseserve.model.SyntheticModel;
import io.sparseserve.tensor.DType;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Connections are bounded in number (--max-connections), HTTP/2 streams per connection (announced in SETTINGS) and
 * idle time (--idle-timeout), seen from raw sockets. Paused streams giving their slots and KV blocks back is tested on
 * the engine ({@code PausedSequencesTest}); a stream nobody reads is cancelled after --stream-idle-timeout.
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
                ServerLimits.defaults().withConnections(3, 7, Duration.ofSeconds(2)).withClients(3, null))) {
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
     * Connections that never send a byte count too (they used to be counted only once their first bytes told HTTP/1.1
     * from HTTP/2, so a silent flood was bounded by --idle-timeout alone): over --max-connections-per-client from one
     * address, or over --max-connections in all, a new connection is closed at once, long before the idle timeout.
     */
    @Test
    void silentConnectionsCountAgainstTheConnectionLimits() throws Exception {
        try (ServerFixture f = new ServerFixture(TestData.bundledModel(), Engine.Config.defaults(), ServerSecurity.NONE,
                ServerLimits.defaults().withConnections(4, 100, Duration.ofSeconds(120)).withClients(2, null))) {
            f.channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            ServerFixture.await("no connections", Duration.ofSeconds(10), () -> f.server.openConnections() == 0);
            List<Socket> held = new ArrayList<>();
            try {
                for (String from : List.of("127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3")) held.add(silent(from, f.port));
                ServerFixture.await("four silent connections counted", Duration.ofSeconds(10), () -> f.server.openConnections() == 4);
                assertEquals(2, f.server.connectedClients());
                // A third from one address: over --max-connections-per-client 2.
                try (Socket third = silent("127.0.0.2", f.port)) {
                    assertTrue(closedOrGoaway(new DataInputStream(third.getInputStream())), "a third connection from one address stayed open");
                }
                // A first from a new address: over --max-connections 4.
                try (Socket fifth = silent("127.0.0.4", f.port)) {
                    assertTrue(closedOrGoaway(new DataInputStream(fifth.getInputStream())), "a fifth connection stayed open");
                }
                assertEquals(2, f.server.refusedConnections());
                assertEquals(4, f.server.openConnections());
            } finally {
                for (Socket s : held) s.close();
            }
            ServerFixture.await("the connections' counts released", Duration.ofSeconds(10),
                    () -> f.server.openConnections() == 0 && f.server.connectedClients() == 0);
            assertEquals(200, f.get("/healthz").statusCode());
        }
    }

    /** A connection from {@code from} that sends nothing; reads time out after 10 s (the idle timeout is far later). */
    private static Socket silent(String from, int port) throws IOException {
        Socket s = new Socket();
        s.bind(new InetSocketAddress(InetAddress.ofLiteral(from), 0));
        s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 10_000);
        s.setSoTimeout(10_000);
        return s;
    }

    /**
     * A gRPC stream whose client reads nothing (grpc-java with no messages requested and a 16-byte HTTP/2 window, so
     * the first response message already fills it) is paused, then cancelled after --stream-idle-timeout (1 s here):
     * its slot and KV blocks come back and the access log says STREAM_IDLE_TIMEOUT.
     */
    @Test
    void aGrpcStreamNobodyReadsIsCancelledAfterTheStreamIdleTimeout() throws Exception {
        try (ServerFixture f = new ServerFixture(TestData.bundledModel(), new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE),
                ServerSecurity.NONE, ServerLimits.defaults().withStreamIdleTimeout(Duration.ofSeconds(1)))) {
            List<String> lines = new CopyOnWriteArrayList<>();
            f.server.accessLog().addListener(lines::add);
            io.grpc.ManagedChannel tiny = io.grpc.netty.shaded.io.grpc.netty.NettyChannelBuilder.forAddress("127.0.0.1", f.port)
                    .usePlaintext().flowControlWindow(16).build();
            try {
                var error = new java.util.concurrent.CompletableFuture<Throwable>();
                io.sparseserve.api.v1.TextGenerationGrpc.newStub(tiny).withDeadlineAfter(60, TimeUnit.SECONDS).generateStream(
                        io.sparseserve.api.v1.GenerateRequest.newBuilder().setPrompt("Once upon a time").setMaxNewTokens(100)
                                .setIgnoreEos(true).setRequestId("paused-grpc").build(),
                        new io.grpc.stub.ClientResponseObserver<io.sparseserve.api.v1.GenerateRequest,
                                io.sparseserve.api.v1.GenerateStreamResponse>() {
                            @Override
                            public void beforeStart(io.grpc.stub.ClientCallStreamObserver<io.sparseserve.api.v1.GenerateRequest> call) {
                                call.disableAutoRequestWithInitial(0); // never ask for a message
                            }

                            @Override
                            public void onNext(io.sparseserve.api.v1.GenerateStreamResponse value) {
                                error.complete(new AssertionError("a message was delivered without being requested"));
                            }

                            @Override
                            public void onError(Throwable t) {
                                error.complete(t);
                            }

                            @Override
                            public void onCompleted() {
                                error.complete(new AssertionError("the stream completed"));
                            }
                        });
                ServerFixture.await("the paused stream's access-log line", Duration.ofSeconds(30),
                        () -> lines.stream().anyMatch(l -> l.startsWith("request_id=paused-grpc ")));
                String line = lines.stream().filter(l -> l.startsWith("request_id=paused-grpc ")).findFirst().orElseThrow();
                assertTrue(line.contains("method=GenerateStream status=STREAM_IDLE_TIMEOUT"), line);
                ServerFixture.await("its slot and KV blocks back", Duration.ofSeconds(10),
                        () -> f.engine.running() == 0 && f.engine.parked() == 0 && f.engine.waiting() == 0
                                && f.engine.kvFreeBlocks() == f.engine.kvTotalBlocks());
                // grpc-java holds the reset's status behind the messages nobody asked for: none may have been delivered.
                if (error.isDone()) {
                    Throwable t = error.join();
                    assertEquals(io.grpc.Status.Code.CANCELLED, io.grpc.Status.fromThrowable(t).getCode(), String.valueOf(t));
                }
                // The connection still serves.
                assertEquals(200, f.get("/healthz").statusCode());
            } finally {
                tiny.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * A chat stream whose client reads nothing: once the kernel's buffers and the write queue are full the sequence
     * is parked, and after --stream-idle-timeout (1 s here) cancelled, with an access-log line saying so. About 9 MB
     * of SSE (12000 tokens with 20 alternatives each) outgrows loopback's send buffer (4 MiB at most on Linux) and
     * the client's 4 KB receive buffer; a 1-layer synthetic model with 32768 positions makes them in seconds.
     */
    @Test
    void aChatStreamNobodyReadsIsCancelledAfterTheStreamIdleTimeout(@TempDir Path tmp) throws Exception {
        Path model = tmp.resolve("ctx32k-chat");
        SyntheticModel.write(new SyntheticModel.Shape(Family.LLAMA, 64, 1, 4, 4, 128, 4096, 32768), DType.F32, 5,
                TestData.bundledModel().resolve("tokenizer.json"), model);
        Files.writeString(model.resolve("chat_template.jinja"), ChatModels.TEMPLATE);
        try (ServerFixture f = new ServerFixture(model, new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE),
                ServerSecurity.NONE, ServerLimits.defaults().withStreamIdleTimeout(Duration.ofSeconds(1)))) {
            List<String> lines = new CopyOnWriteArrayList<>();
            f.server.accessLog().addListener(lines::add);
            byte[] body = ("{\"messages\": [{\"role\": \"user\", \"content\": \"The kernel\"}], \"max_tokens\": 12000,"
                    + " \"ignore_eos\": true, \"stream\": true, \"logprobs\": true, \"top_logprobs\": 20,"
                    + " \"return_token_ids\": true}").getBytes(StandardCharsets.UTF_8);
            try (Socket s = new Socket()) {
                s.setReceiveBufferSize(4096);
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), f.port), 10_000);
                OutputStream out = s.getOutputStream();
                out.write(("POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nx-request-id: slow-chat\r\n"
                        + "content-type: application/json\r\ncontent-length: " + body.length + "\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII));
                out.write(body);
                out.flush();
                // Read nothing.
                ServerFixture.await("the unread chat stream's access-log line", Duration.ofSeconds(60),
                        () -> lines.stream().anyMatch(l -> l.startsWith("request_id=slow-chat ")));
                String line = lines.stream().filter(l -> l.startsWith("request_id=slow-chat ")).findFirst().orElseThrow();
                assertTrue(line.contains("method=POST /v1/chat/completions status=STREAM_IDLE_TIMEOUT"), line);
            }
            assertEquals(200, f.get("/healthz").statusCode()); // still serving
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
