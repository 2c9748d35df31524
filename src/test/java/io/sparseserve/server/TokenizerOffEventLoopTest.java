package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.ChatMessage;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GetModelInfoRequest;
import io.sparseserve.api.v1.TextGenerationGrpc;
import io.sparseserve.engine.Engine;
import io.sparseserve.model.Family;
import io.sparseserve.model.SyntheticModel;
import io.sparseserve.tensor.DType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Long prompts are tokenized on the bounded tokenizer pool: the event loop keeps serving the other calls of the same
 * connection meanwhile, and a full pool refuses with RESOURCE_EXHAUSTED at once. A 32768-position model lets
 * hundreds of KB of prompt through the size check to the tokenizer (the bundled model's 128 positions do not).
 */
class TokenizerOffEventLoopTest {
    @TempDir static Path tmp;

    static Path longModel() throws Exception {
        Path dir = tmp.resolve("ctx32k");
        if (!Files.isDirectory(dir)) {
            SyntheticModel.write(new SyntheticModel.Shape(Family.LLAMA, 64, 1, 4, 4, 128, 4096, 32768), DType.F32, 5,
                    TestData.bundledModel().resolve("tokenizer.json"), dir);
            Files.writeString(dir.resolve("chat_template.jinja"), ChatModels.TEMPLATE); // for the chat test
        }
        return dir;
    }

    /** About 240 KB: the 60k-character test text four times (hundreds of milliseconds of tokenizing). */
    static String longPrompt() throws Exception {
        return Files.readString(TestData.testText60k()).repeat(4);
    }

    /** The thread that is running the tokenizer now (encode or encodePrompt), polled from the threads' stacks (bounded). */
    static Thread tokenizingThread(CompletableFuture<?> stopIf) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline && !stopIf.isDone()) {
            for (var e : Thread.getAllStackTraces().entrySet()) {
                for (StackTraceElement frame : e.getValue()) {
                    if (frame.getClassName().equals("io.sparseserve.model.Tokenizer") && frame.getMethodName().startsWith("encode")) {
                        return e.getKey();
                    }
                }
            }
            java.util.concurrent.locks.LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
        }
        throw new AssertionError("never saw the prompt being tokenized");
    }

    static ServerFixture server(int threads, int queue) throws Exception {
        return new ServerFixture(longModel(), new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE), ServerSecurity.NONE,
                ServerLimits.defaults().withTokenizer(threads, queue));
    }

    @Test
    void otherCallsOnTheSameConnectionAreServedWhileALongPromptTokenizes() throws Exception {
        try (ServerFixture f = server(2, 4)) {
            String prompt = longPrompt();
            List<String> order = new ArrayList<>();
            CompletableFuture<Status> longCall = new CompletableFuture<>();
            TextGenerationGrpc.newStub(f.channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(
                    GenerateRequest.newBuilder().setPrompt(prompt).setMaxNewTokens(1).build(), new StreamObserver<>() {
                        public void onNext(GenerateResponse r) {}

                        public void onError(Throwable t) {
                            synchronized (order) {
                                order.add("long");
                            }
                            longCall.complete(Status.fromThrowable(t));
                        }

                        public void onCompleted() {
                            synchronized (order) {
                                order.add("long");
                            }
                            longCall.complete(Status.OK);
                        }
                    });
            Thread tokenizer = tokenizingThread(longCall);
            assertTrue(tokenizer.getName().startsWith("sparse-serve-tokenizer-"), "tokenized on " + tokenizer.getName());
            // Same channel, so the same connection and event loop, while the prompt is being tokenized.
            for (int i = 0; i < 3; i++) {
                f.blocking().getModelInfo(GetModelInfoRequest.getDefaultInstance());
                synchronized (order) {
                    order.add("info");
                }
            }
            Status s = longCall.get(60, TimeUnit.SECONDS);
            // The prompt is far longer than the context: refused, but only after tokenizing it.
            assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString());
            assertTrue(s.getDescription().contains("shorter than the context length"), s.getDescription());
            assertEquals(List.of("info", "info", "info", "long"), order);
        }
    }

    @Test
    void chatMessagesAreRenderedAndTokenizedOnThePoolThroughGrpcAndHttp() throws Exception {
        try (ServerFixture f = server(2, 4)) {
            String content = longPrompt();
            CompletableFuture<Status> grpcCall = new CompletableFuture<>();
            TextGenerationGrpc.newStub(f.channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(GenerateRequest.newBuilder()
                    .addMessages(ChatMessage.newBuilder().setRole("user").setContent(content)).setMaxNewTokens(1).build(),
                    new StreamObserver<>() {
                        public void onNext(GenerateResponse r) {}

                        public void onError(Throwable t) {
                            grpcCall.complete(Status.fromThrowable(t));
                        }

                        public void onCompleted() {
                            grpcCall.complete(Status.OK);
                        }
                    });
            Thread grpcTokenizer = tokenizingThread(grpcCall);
            assertTrue(grpcTokenizer.getName().startsWith("sparse-serve-tokenizer-"), "gRPC messages tokenized on "
                    + grpcTokenizer.getName());
            Status s = grpcCall.get(60, TimeUnit.SECONDS);
            assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString()); // longer than the context

            String body = "{\"messages\": [{\"role\": \"user\", \"content\": " + io.vertx.core.json.Json.encode(content)
                    + "}], \"max_tokens\": 1}";
            CompletableFuture<java.net.http.HttpResponse<String>> post = java.net.http.HttpClient.newBuilder()
                    .version(java.net.http.HttpClient.Version.HTTP_1_1).build().sendAsync(java.net.http.HttpRequest.newBuilder(
                            java.net.URI.create("http://127.0.0.1:" + f.port + "/v1/chat/completions")).timeout(Duration.ofSeconds(60))
                            .header("content-type", "application/json").POST(java.net.http.HttpRequest.BodyPublishers.ofString(body))
                            .build(), java.net.http.HttpResponse.BodyHandlers.ofString());
            Thread httpTokenizer = tokenizingThread(post);
            assertTrue(httpTokenizer.getName().startsWith("sparse-serve-tokenizer-"), "HTTP chat tokenized on "
                    + httpTokenizer.getName());
            java.net.http.HttpResponse<String> r = post.get(60, TimeUnit.SECONDS);
            assertEquals(400, r.statusCode(), r.body());
            assertTrue(r.body().contains("shorter than the context length"), r.body());
        }
    }

    @Test
    void aFullTokenizerPoolRefusesWithResourceExhaustedAnd429() throws Exception {
        try (ServerFixture f = server(1, 0)) {
            String prompt = longPrompt();
            int calls = 4;
            List<CompletableFuture<Status>> done = new ArrayList<>();
            for (int i = 0; i < calls; i++) {
                CompletableFuture<Status> d = new CompletableFuture<>();
                done.add(d);
                TextGenerationGrpc.newStub(f.channel).withDeadlineAfter(60, TimeUnit.SECONDS).generate(
                        GenerateRequest.newBuilder().setPrompt(prompt).setMaxNewTokens(1).build(), new StreamObserver<>() {
                            public void onNext(GenerateResponse r) {}

                            public void onError(Throwable t) {
                                d.complete(Status.fromThrowable(t));
                            }

                            public void onCompleted() {
                                d.complete(Status.OK);
                            }
                        });
            }
            AtomicInteger exhausted = new AtomicInteger(), tokenized = new AtomicInteger();
            for (CompletableFuture<Status> d : done) {
                Status s = d.get(60, TimeUnit.SECONDS);
                if (s.getCode() == Status.Code.RESOURCE_EXHAUSTED) {
                    exhausted.incrementAndGet();
                    assertTrue(s.getDescription().contains("--tokenizer-queue"), s.getDescription());
                } else {
                    assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode(), s.toString());
                    tokenized.incrementAndGet();
                }
            }
            assertTrue(exhausted.get() >= 1, "no call was refused: " + tokenized + " tokenized");
            assertTrue(tokenized.get() >= 1);

            // HTTP: the same refusal is 429; the server still answers afterwards.
            String body = "{\"prompt\": " + io.vertx.core.json.Json.encode(prompt) + ", \"max_tokens\": 1}";
            List<CompletableFuture<java.net.http.HttpResponse<String>>> posts = new ArrayList<>();
            java.net.http.HttpClient http = java.net.http.HttpClient.newBuilder().version(java.net.http.HttpClient.Version.HTTP_1_1).build();
            for (int i = 0; i < calls; i++) {
                posts.add(http.sendAsync(java.net.http.HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + f.port
                        + "/v1/completions")).timeout(Duration.ofSeconds(60)).header("content-type", "application/json")
                        .POST(java.net.http.HttpRequest.BodyPublishers.ofString(body)).build(),
                        java.net.http.HttpResponse.BodyHandlers.ofString()));
            }
            int tooMany = 0;
            for (var p : posts) {
                int code = p.get(60, TimeUnit.SECONDS).statusCode();
                assertTrue(code == 429 || code == 400, "status " + code);
                if (code == 429) tooMany++;
            }
            assertTrue(tooMany >= 1, "no HTTP request was refused with 429");
            assertEquals(200, f.post("/v1/completions", "{\"prompt\": \"The\", \"max_tokens\": 1}").statusCode());
        }
    }
}
