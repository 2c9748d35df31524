package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.engine.Engine;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Clients (told apart by address: the "other" client connects from 127.0.0.2, which Linux routes to loopback like
 * 127.0.0.1) share the running slots: one that holds every slot does not make another wait for its streams to end,
 * --max-running-per-client caps one client, and --max-waiting-per-client bounds its share of the queue. Real server,
 * the JDK HTTP client (streams from 127.0.0.2) and grpc-java (from 127.0.0.1).
 */
class ClientFairnessTest {
    private static final InetAddress OTHER = InetAddress.ofLiteral("127.0.0.2");

    /** One /v1/completions stream read line by line on its own thread. */
    private static final class Stream {
        volatile int chunks;
        volatile boolean done;
    }

    private static Stream stream(HttpClient client, int port, int maxTokens) {
        Stream s = new Stream();
        String body = "{\"prompt\": \"Once upon a time\", \"max_tokens\": " + maxTokens + ", \"ignore_eos\": true, \"stream\": true}";
        client.sendAsync(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + port + "/v1/completions"))
                        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofLines()).thenAccept(r -> r.body().forEach(line -> {
                    if (line.equals("data: [DONE]")) s.done = true;
                    else if (line.startsWith("data: ")) s.chunks++;
                }));
        return s;
    }

    private static HttpClient from(InetAddress address) {
        return HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).localAddress(address)
                .connectTimeout(Duration.ofSeconds(5)).build();
    }

    private static GenerateRequest shortRequest(String id) {
        return GenerateRequest.newBuilder().setPrompt("Once upon a time").setMaxNewTokens(4).setIgnoreEos(true)
                .setRequestId(id).build();
    }

    @Test
    void aClientThatHoldsEverySlotDoesNotMakeAnotherWaitForItsStreams(@TempDir Path tmp) throws Exception {
        Path model = ServerFixture.longContextModel(tmp.resolve("ctx4k"));
        try (ServerFixture f = new ServerFixture(model, new Engine.Config(64, 2, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE));
             HttpClient other = from(OTHER)) {
            List<String> lines = new CopyOnWriteArrayList<>();
            f.server.accessLog().addListener(lines::add);
            // The other client takes both slots with long streams (thousands of tokens).
            Stream a = stream(other, f.port, 3000), b = stream(other, f.port, 3000);
            ServerFixture.await("both long streams running", Duration.ofSeconds(60), () -> a.chunks > 0 && b.chunks > 0);
            assertEquals(2, f.engine.running());

            // First come, first served would queue this call until one of them ends; its fair share is one slot.
            GenerateResponse r = f.blocking().generate(shortRequest("fair"));
            assertEquals(4, r.getTokenIdsCount());
            assertFalse(a.done || b.done, "the short call waited for a long stream to end");
            // The access-log line is written once the call has ended, which may be just after the client has its answer.
            ServerFixture.await("the fair call's access-log line naming its client", Duration.ofSeconds(10),
                    () -> lines.stream().anyMatch(l -> l.startsWith("request_id=fair ") && l.endsWith(" client=127.0.0.1")));

            other.shutdownNow(); // the other client leaves: its streams are cancelled
            ServerFixture.await("the engine idle and its clients forgotten", Duration.ofSeconds(30),
                    () -> f.engine.running() == 0 && f.engine.waiting() == 0 && f.engine.clients() == 0
                            && f.engine.kvFreeBlocks() == f.engine.kvTotalBlocks());
            assertTrue(lines.stream().anyMatch(l -> l.contains("status=499") && l.endsWith(" client=127.0.0.2")), lines.toString());
        }
    }

    @Test
    void maxRunningAndWaitingPerClientCapOneClient(@TempDir Path tmp) throws Exception {
        Path model = ServerFixture.longContextModel(tmp.resolve("ctx4k"));
        Engine.Config config = new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE).withClientLimits(1, 1);
        try (ServerFixture f = new ServerFixture(model, config); HttpClient other = from(OTHER)) {
            Stream a = stream(other, f.port, 3000);
            ServerFixture.await("the long stream running", Duration.ofSeconds(60), () -> a.chunks > 0);
            Stream b = stream(other, f.port, 4);
            ServerFixture.await("the client's second request in the engine", Duration.ofSeconds(30),
                    () -> f.engine.running() + f.engine.waiting() == 2);

            // Free slots, but the other client is at --max-running-per-client 1: its second request waits, this one runs.
            assertEquals(4, f.blocking().generate(shortRequest("capped")).getTokenIdsCount());
            assertEquals(1, f.engine.waiting(), "the client's second request should wait for its first");
            assertEquals(0, b.chunks);
            assertFalse(a.done);

            // Its share of the queue (--max-waiting-per-client 1) is taken: a third request is refused at once.
            HttpResponse<String> third = other.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + f.port + "/v1/completions"))
                    .header("content-type", "application/json").timeout(Duration.ofSeconds(30))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"Once\", \"max_tokens\": 2}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(429, third.statusCode(), third.body());
            assertTrue(third.body().contains("--max-waiting-per-client"), third.body());

            other.shutdownNow();
            ServerFixture.await("the engine idle and its clients forgotten", Duration.ofSeconds(30),
                    () -> f.engine.running() == 0 && f.engine.waiting() == 0 && f.engine.clients() == 0);
        }
    }
}
