package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.engine.Engine;
import io.sparseserve.backend.RunnerConfig;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.UnaryOperator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Cancellation, admission control and validation on a server with one running slot and one waiting slot, serving a
 * long-context model so that streams run for seconds.
 */
class AdmissionAndCancellationTest {
    @TempDir static Path tmp;
    static ServerFixture f;

    @BeforeAll
    static void start() throws IOException {
        Path model = ServerFixture.longContextModel(tmp.resolve("long"));
        f = new ServerFixture(model, new Engine.Config(64, 1, 1, 0, RunnerConfig.DEFAULT_BLOCK_SIZE));
    }

    @AfterAll
    static void stop() throws Exception {
        f.close();
    }

    static GenerateRequest longStream() {
        return GenerateRequest.newBuilder().setPrompt("Once upon a time").setMaxNewTokens(4000).setIgnoreEos(true).build();
    }

    static GenerateRequest small() {
        return GenerateRequest.newBuilder().setPrompt("The cat").setMaxNewTokens(4).build();
    }

    double metric(String name) {
        try {
            return f.metric(name);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    /** A long stream that counts messages; cancel it through its gRPC context. */
    record Running(Context.CancellableContext context, CompletableFuture<Void> firstMessage, AtomicInteger messages,
                   CompletableFuture<Status> end) {}

    static Running startLongStream() {
        Context.CancellableContext ctx = Context.current().withCancellation();
        CompletableFuture<Void> first = new CompletableFuture<>();
        AtomicInteger messages = new AtomicInteger();
        CompletableFuture<Status> end = new CompletableFuture<>();
        ctx.run(() -> f.async().generateStream(longStream(), new StreamObserver<>() {
            @Override
            public void onNext(GenerateStreamResponse value) {
                messages.incrementAndGet();
                first.complete(null);
            }

            @Override
            public void onError(Throwable t) {
                end.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {
                end.complete(Status.OK);
            }
        }));
        return new Running(ctx, first, messages, end);
    }

    @Test
    void aCancelledStreamFreesItsKvBlocksAndStopsGenerating() throws Exception {
        double cancelledBefore = cancelledCount();
        Running r = startLongStream();
        r.firstMessage().get(30, TimeUnit.SECONDS);
        assertTrue(metric("sparseserve_kv_cache_usage_ratio") > 0, "a running stream holds blocks");
        double generatedBefore = metric("sparseserve_generation_tokens_total");
        r.context().cancel(null);
        ServerFixture.await("the KV usage gauge to return to 0", Duration.ofSeconds(20),
                () -> metric("sparseserve_kv_cache_usage_ratio") == 0 && metric("sparseserve_requests_running") == 0);
        ServerFixture.await("the cancellation to be counted", Duration.ofSeconds(20), () -> cancelledCount() == cancelledBefore + 1);
        double generated = metric("sparseserve_generation_tokens_total") - generatedBefore;
        assertTrue(generated < 4000, "the sequence stopped early: " + generated + " tokens");
        assertEquals(f.engine.kvTotalBlocks(), f.engine.kvFreeBlocks());
        // The server goes on.
        assertEquals(4, f.blocking().generate(small()).getTokenIdsCount());
    }

    double cancelledCount() {
        try {
            return f.get("/metrics").body().contains("status=\"cancelled\"")
                    ? metric("sparseserve_requests_total{finish_reason=\"none\",status=\"cancelled\"}") : 0;
        } catch (IOException | InterruptedException e) {
            throw new IllegalStateException(e);
        }
    }

    @Test
    void aPassedDeadlineCancelsTheSequence() {
        var e = assertThrows(StatusRuntimeException.class, () -> f.blocking().withDeadlineAfter(300, TimeUnit.MILLISECONDS)
                .generate(longStream()));
        assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
        ServerFixture.await("the sequence to leave", Duration.ofSeconds(20), () -> f.engine.running() == 0);
        assertEquals(4, f.blocking().generate(small()).getTokenIdsCount());
    }

    @Test
    void aFullQueueGetsResourceExhausted() throws Exception {
        Running running = startLongStream();
        running.firstMessage().get(30, TimeUnit.SECONDS);
        CompletableFuture<GenerateResponse> waiting = new CompletableFuture<>();
        f.async().generate(small(), TextGenerationServerTest.observer(waiting));
        ServerFixture.await("one request waiting", Duration.ofSeconds(20), () -> metric("sparseserve_requests_waiting") == 1);
        var e = assertThrows(StatusRuntimeException.class, () -> f.blocking().generate(small()));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("--max-waiting"), e.getStatus().getDescription());
        running.context().cancel(null);
        assertEquals(4, waiting.get(30, TimeUnit.SECONDS).getTokenIdsCount(), "the waiting request runs once there is room");
        assertEquals(4, f.blocking().generate(small()).getTokenIdsCount());
    }

    @Test
    void eachInvalidRequestGetsInvalidArgumentNamingTheFieldAndTheServerGoesOn() {
        int context = 4096;
        List<Case> cases = List.of(
                new Case("prompt", b -> b.setPrompt("")),
                new Case("prompt", b -> b.setPrompt("x".repeat(200_000))), // too many tokens
                new Case("prompt", b -> b.setPrompt("x".repeat(4_000_000))), // too many bytes to even tokenize
                new Case("max_new_tokens", b -> b.setMaxNewTokens(context)),
                new Case("max_new_tokens", b -> b.clearPrompt().addAllPromptTokenIds(List.of(5, 6, 7)).setMaxNewTokens(context - 2)),
                new Case("max_new_tokens", b -> b.setMaxNewTokens(0)),
                new Case("temperature", b -> b.setTemperature(-0.5f)),
                new Case("top_p", b -> b.setTopP(0f)),
                new Case("top_p", b -> b.setTopP(1.5f)),
                new Case("top_k", b -> b.setTopK(-1)),
                new Case("min_p", b -> b.setMinP(1f)),
                new Case("repetition_penalty", b -> b.setRepetitionPenalty(0f)),
                new Case("presence_penalty", b -> b.setPresencePenalty(3f)),
                new Case("stop", b -> b.addAllStop(List.of("a", "b", "c", "d", "e", "f", "g", "h", "i"))),
                new Case("stop[1]", b -> b.addAllStop(List.of("a", ""))),
                new Case("prompt_token_ids[1]", b -> b.clearPrompt().addAllPromptTokenIds(List.of(1, 4096))),
                new Case("prompt_token_ids[0]", b -> b.clearPrompt().addAllPromptTokenIds(List.of(-3))),
                new Case("stop_token_ids[0]", b -> b.addStopTokenIds(99999)),
                new Case("prompt and prompt_token_ids", b -> b.addPromptTokenIds(1)),
                new Case("min_new_tokens", b -> b.setMinNewTokens(100)),
                new Case("logprobs", b -> b.setLogprobs(21)),
                new Case("request_id", b -> b.setRequestId("x".repeat(200))));
        for (Case c : cases) {
            GenerateRequest request = c.change().apply(small().toBuilder()).build();
            for (boolean stream : new boolean[] {false, true}) {
                var e = assertThrows(StatusRuntimeException.class, () -> {
                    if (stream) f.blocking().generateStream(request).forEachRemaining(m -> {});
                    else f.blocking().generate(request);
                }, c.field());
                assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), c.field());
                String message = e.getStatus().getDescription();
                assertTrue(message != null && message.startsWith(c.field()), c.field() + ": " + message);
                assertEquals(4, f.blocking().generate(small()).getTokenIdsCount(), "a valid request right after " + c.field());
            }
        }
    }

    record Case(String field, UnaryOperator<GenerateRequest.Builder> change) {}

    @Test
    void anOversizedMessageGetsInvalidArgumentAndTheServerGoesOn() {
        // Beyond the transport's message limit (16 MiB): refused before it is decoded.
        GenerateRequest huge = small().toBuilder().setPromptBytes(ByteString.copyFrom(new byte[17 << 20])).build();
        var e = assertThrows(StatusRuntimeException.class, () -> f.blocking().generate(huge));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().startsWith("message is "), e.getStatus().getDescription());
        assertEquals(4, f.blocking().generate(small()).getTokenIdsCount());
    }
}
