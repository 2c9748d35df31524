package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import io.sparseserve.api.v1.FinishReason;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.TextGenerationGrpc;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The real {@code serve} command in its own JVM (the test classpath): SIGTERM while two streams run lets them
 * finish, turns health NOT_SERVING and new calls UNAVAILABLE, and the process exits 0. The drain timeout is generous
 * (600 s; the streams take ~20 s on an idle machine): on a loaded 2-core machine 2 x 1500 tokens outlasted 60 s.
 */
class GracefulShutdownTest {
    @TempDir Path tmp;

    @Test
    void sigtermDrainsRunningStreamsRefusesNewCallsAndExitsZero() throws Exception {
        Path model = ServerFixture.longContextModel(tmp.resolve("long"));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "io.sparseserve.cli.Main", "serve", "--model", model.toString(),
                "--port", "0", "--drain-timeout", "600").redirectErrorStream(true).start();
        try {
            CompletableFuture<Integer> port = new CompletableFuture<>();
            StringBuilder log = new StringBuilder();
            Thread reader = Thread.ofPlatform().daemon().start(() -> {
                Pattern listening = Pattern.compile("sparse-serve: listening on [^:]+:(\\d+)");
                try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                    for (String line; (line = r.readLine()) != null; ) {
                        synchronized (log) {
                            log.append(line).append('\n');
                        }
                        Matcher m = listening.matcher(line);
                        if (m.find()) port.complete(Integer.parseInt(m.group(1)));
                    }
                } catch (Exception e) {
                    port.completeExceptionally(e);
                }
                port.completeExceptionally(new IllegalStateException("the server exited before listening:\n" + log));
            });
            ManagedChannel channel = ManagedChannelBuilder.forAddress("127.0.0.1", port.get(60, TimeUnit.SECONDS))
                    .usePlaintext().build();
            try {
                var stub = TextGenerationGrpc.newStub(channel).withDeadlineAfter(600, TimeUnit.SECONDS);
                GenerateRequest longRequest = GenerateRequest.newBuilder().setPrompt("Once upon a time").setMaxNewTokens(1500)
                        .setIgnoreEos(true).build();
                List<CompletableFuture<GenerateStreamResponse>> last = new ArrayList<>();
                List<CompletableFuture<Void>> first = new ArrayList<>();
                List<AtomicInteger> tokens = new ArrayList<>();
                for (int i = 0; i < 2; i++) {
                    CompletableFuture<GenerateStreamResponse> end = new CompletableFuture<>();
                    CompletableFuture<Void> started = new CompletableFuture<>();
                    AtomicInteger count = new AtomicInteger();
                    stub.generateStream(longRequest, new StreamObserver<>() {
                        GenerateStreamResponse latest;

                        @Override
                        public void onNext(GenerateStreamResponse m) {
                            latest = m;
                            count.addAndGet(m.getTokenIdsCount());
                            started.complete(null);
                        }

                        @Override
                        public void onError(Throwable t) {
                            end.completeExceptionally(t);
                        }

                        @Override
                        public void onCompleted() {
                            end.complete(latest);
                        }
                    });
                    last.add(end);
                    first.add(started);
                    tokens.add(count);
                }
                for (CompletableFuture<Void> s : first) s.get(60, TimeUnit.SECONDS);

                p.destroy(); // SIGTERM
                var health = HealthGrpc.newBlockingStub(channel);
                ServerFixture.await("health NOT_SERVING", Duration.ofSeconds(30), () -> health
                        .withDeadlineAfter(5, TimeUnit.SECONDS).check(HealthCheckRequest.getDefaultInstance()).getStatus()
                        == HealthCheckResponse.ServingStatus.NOT_SERVING);
                assertTrue(!last.get(0).isDone() && !last.get(1).isDone(), "the streams were meant to outlast this check");
                var refused = assertThrows(StatusRuntimeException.class, () -> TextGenerationGrpc.newBlockingStub(channel)
                        .withDeadlineAfter(10, TimeUnit.SECONDS)
                        .generate(GenerateRequest.newBuilder().setPrompt("The cat").setMaxNewTokens(2).build()));
                assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode());

                for (int i = 0; i < 2; i++) {
                    GenerateStreamResponse end = last.get(i).get(600, TimeUnit.SECONDS);
                    assertEquals(FinishReason.LENGTH, end.getFinishReason(), "stream " + i + " finished normally");
                    assertEquals(1500, end.getUsage().getCompletionTokens());
                    assertEquals(1500, tokens.get(i).get());
                }
            } finally {
                channel.shutdownNow().awaitTermination(10, TimeUnit.SECONDS);
            }
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the server exits after draining");
            reader.join(10_000);
            assertEquals(0, p.exitValue(), () -> "exit status; server log:\n" + log);
        } finally {
            p.destroyForcibly();
        }
    }
}
