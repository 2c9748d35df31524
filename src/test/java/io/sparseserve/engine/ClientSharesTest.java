package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.model.Family;
import io.sparseserve.model.Model;
import io.sparseserve.model.SyntheticModel;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.tensor.DType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Each step's prompt tokens are shared between clients: one client's long prompt, prefilled chunk by chunk, leaves
 * room in every step for another client's short one, which therefore finishes before the long one's first token
 * (before, the long prompt took every step's whole budget until it was done).
 */
class ClientSharesTest {
    /** A tiny random Llama with a 4096-token context (room for long prompts), the bundled model's tokenizer. */
    private static Path longContextModel(Path tmp) throws Exception {
        Path dir = tmp.resolve("ctx4k");
        SyntheticModel.write(new SyntheticModel.Shape(Family.LLAMA, 64, 2, 4, 4, 128, 4096, 4096), DType.F32, 3,
                TestData.bundledModel().resolve("tokenizer.json"), dir);
        return dir;
    }

    @Test
    void aShortPromptIsNotQueuedBehindAnotherClientsLongPrefill(@TempDir Path tmp) throws Exception {
        Path dir = longContextModel(tmp);
        try (Model model = Model.load(dir); Tokenizer tokenizer = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            CountDownLatch firstStep = new CountDownLatch(1);
            EngineObserver obs = new EngineObserver() {
                @Override
                public void onStep(int sequences, int tokens, long nanos) {
                    firstStep.countDown();
                }
            };
            try (Engine engine = new Engine(model, tokenizer, ModelRunners.cpu(),
                    new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE), obs)) {
                AtomicInteger clock = new AtomicInteger(); // events on the scheduler thread, in order
                int[] longPrompt = Arrays.copyOf(tokenizer.encode("The quick brown fox jumps over the lazy dog. ".repeat(400)), 3000);
                int[] longFirstToken = {-1};
                CollectingSink longSink = new CollectingSink() {
                    @Override
                    public void onDelta(Delta delta) {
                        if (longFirstToken[0] < 0) longFirstToken[0] = clock.incrementAndGet();
                        super.onDelta(delta);
                    }

                    @Override
                    public void onFinish(Delta last, Finished finished) {
                        if (longFirstToken[0] < 0) longFirstToken[0] = clock.incrementAndGet();
                        super.onFinish(last, finished);
                    }
                };
                engine.submit(new GenerationRequest("long", longPrompt, SamplingParams.greedy(), 4, 0, List.of(),
                        new int[0], true, -1), longSink, "a");
                assertTrue(firstStep.await(60, TimeUnit.SECONDS));
                int[] shortDone = {-1};
                CollectingSink shortSink = new CollectingSink() {
                    @Override
                    public void onFinish(Delta last, Finished finished) {
                        shortDone[0] = clock.incrementAndGet();
                        super.onFinish(last, finished);
                    }
                };
                engine.submit(new GenerationRequest("short", tokenizer.encode("Once upon a time"), SamplingParams.greedy(),
                        4, 0, List.of(), new int[0], true, -1), shortSink, "b");
                assertEquals(4, shortSink.await().tokenIds().length);
                assertEquals(4, longSink.await().tokenIds().length);
                assertTrue(shortDone[0] < longFirstToken[0],
                        "the short prompt waited for the other client's long prefill");
                assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
                assertEquals(0, engine.clients());
            }
        }
    }

    /**
     * A short request that arrives while another client's long prompt is being prefilled gets an express step: its
     * own prompt and the decodes, none of the long prompt's chunk (whose step it would otherwise also have to wait
     * for); the long prompt still goes on, at least every other step.
     */
    @Test
    void aNewRequestsFirstStepCarriesNoneOfAnotherClientsPrompt(@TempDir Path tmp) throws Exception {
        Path dir = longContextModel(tmp);
        try (Model model = Model.load(dir); Tokenizer tokenizer = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            List<Integer> steps = new java.util.concurrent.CopyOnWriteArrayList<>(); // tokens per step, in order
            CountDownLatch firstStep = new CountDownLatch(1);
            EngineObserver obs = new EngineObserver() {
                @Override
                public void onStep(int sequences, int tokens, long nanos) {
                    steps.add(tokens);
                    firstStep.countDown();
                }
            };
            Engine.Config config = new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE).withSharedPrefillMillis(0.001);
            try (Engine engine = new Engine(model, tokenizer, ModelRunners.cpu(), config, obs)) {
                String text = "The quick brown fox jumps over the lazy dog. ".repeat(400);
                CollectingSink longSink = new CollectingSink();
                engine.submit(new GenerationRequest("long", Arrays.copyOf(tokenizer.encode(text), 2000),
                        SamplingParams.greedy(), 2, 0, List.of(), new int[0], true, -1), longSink, "a");
                assertTrue(firstStep.await(60, TimeUnit.SECONDS));
                int[] shortPrompt = tokenizer.encode("Once upon a time");
                int[] shortStep = {-1}; // its one token comes in the step that computed its prompt
                CollectingSink shortSink = new CollectingSink() {
                    @Override
                    public void onFinish(Delta last, Finished finished) {
                        shortStep[0] = steps.size(); // onStep of this step comes after its sequences' callbacks
                        super.onFinish(last, finished);
                    }
                };
                engine.submit(new GenerationRequest("short", shortPrompt, SamplingParams.greedy(), 1, 0, List.of(),
                        new int[0], true, -1), shortSink, "b");
                assertEquals(1, shortSink.await().tokenIds().length);
                assertEquals(2, longSink.await().tokenIds().length);
                assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
                List<Integer> seen = List.copyOf(steps);
                assertEquals(shortPrompt.length, seen.get(shortStep[0]),
                        () -> "the new request's step also carried the other client's prompt: step " + shortStep[0] + " of " + seen);
                for (int i = 1; i < seen.size() - 1; i++) {
                    int at = i;
                    assertTrue(seen.get(i) > 0 || seen.get(i + 1) > 0, () -> "the long prompt stalled at step " + at + ": " + seen);
                }
            }
        }
    }

    /**
     * While another client decodes, a long prompt goes in chunks of {@link Engine#MIN_SHARED_CHUNK} tokens when
     * --shared-prefill-ms allows no more (a target of 1 us: the floor), not in the client's half of --max-batch-tokens;
     * so it stays for a moment after the other client's request finished (it may come right back); once it is alone,
     * it gets the whole budget again.
     */
    @Test
    void whileAnotherClientDecodesALongPromptGoesInChunksBoundedByTheStepTimeTarget(@TempDir Path tmp) throws Exception {
        Path dir = longContextModel(tmp);
        try (Model model = Model.load(dir); Tokenizer tokenizer = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            record StepSeen(int tokens, boolean decoderDone) {}
            List<StepSeen> steps = new java.util.concurrent.CopyOnWriteArrayList<>();
            java.util.concurrent.atomic.AtomicBoolean decoderDone = new java.util.concurrent.atomic.AtomicBoolean();
            EngineObserver obs = new EngineObserver() {
                @Override
                public void onStep(int sequences, int tokens, long nanos) {
                    steps.add(new StepSeen(tokens, decoderDone.get()));
                }
            };
            Engine.Config config = new Engine.Config(64, 4, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE).withSharedPrefillMillis(0.001);
            try (Engine engine = new Engine(model, tokenizer, ModelRunners.cpu(), config, obs)) {
                String text = "The quick brown fox jumps over the lazy dog. ".repeat(400);
                // At its second token (its prefill step is recorded by then) the decoder holds the scheduler thread
                // until the long prompt is submitted: otherwise a warm engine may finish all 48 tokens first.
                CountDownLatch decoding = new CountDownLatch(1), longSubmitted = new CountDownLatch(1);
                AtomicInteger decoded = new AtomicInteger();
                CollectingSink decoder = new CollectingSink() {
                    @Override
                    public void onDelta(Delta delta) {
                        if (decoded.incrementAndGet() == 2) {
                            decoding.countDown();
                            try {
                                longSubmitted.await(30, TimeUnit.SECONDS);
                            } catch (InterruptedException e) {
                                Thread.currentThread().interrupt();
                            }
                        }
                        super.onDelta(delta);
                    }

                    @Override
                    public void onFinish(Delta last, Finished finished) {
                        decoderDone.set(true);
                        super.onFinish(last, finished);
                    }
                };
                // Its 20-token prompt, alone, is the step that gives the engine its first time per token.
                engine.submit(new GenerationRequest("decoder", Arrays.copyOf(tokenizer.encode(text), 20),
                        SamplingParams.greedy(), 48, 0, List.of(), new int[0], true, -1), decoder, "b");
                assertTrue(decoding.await(60, TimeUnit.SECONDS));
                int from = steps.size();
                CollectingSink longSink = new CollectingSink();
                engine.submit(new GenerationRequest("long", Arrays.copyOf(tokenizer.encode(text), 1000),
                        SamplingParams.greedy(), 2, 0, List.of(), new int[0], true, -1), longSink, "a");
                longSubmitted.countDown();
                assertEquals(48, decoder.await().tokenIds().length);
                assertEquals(2, longSink.await().tokenIds().length);
                assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
                List<StepSeen> after = List.copyOf(steps.subList(from, steps.size()));
                int shared = 0, justAfter = -1, done = 0;
                for (StepSeen st : after) {
                    if (!st.decoderDone()) {
                        assertTrue(st.tokens() <= Engine.MIN_SHARED_CHUNK + 1,
                                () -> "a step carried " + st.tokens() + " tokens while the other client decoded: " + after);
                        if (st.tokens() == Engine.MIN_SHARED_CHUNK + 1) shared++;
                    } else if (++done == 2) { // the first is the step the other client finished in
                        justAfter = st.tokens();
                    }
                }
                assertTrue(shared >= 40, "the long prompt was not chunked while the other client decoded: " + after);
                // Right after the other client's request finished, it still counts (it may come right back).
                assertTrue(justAfter > 0 && justAfter <= Engine.MIN_SHARED_CHUNK,
                        "the step after the other client's finish was not chunked: " + after);

                // Alone (the other client gone for longer than Clients.RECENT_NANOS), a long prompt gets the whole budget.
                Thread.sleep(TimeUnit.NANOSECONDS.toMillis(Clients.RECENT_NANOS) + 200);
                int alone = steps.size();
                CollectingSink lone = new CollectingSink();
                engine.submit(new GenerationRequest("lone", Arrays.copyOf(tokenizer.encode(text), 200),
                        SamplingParams.greedy(), 1, 0, List.of(), new int[0], true, -1), lone, "a");
                assertEquals(1, lone.await().tokenIds().length);
                assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
                List<StepSeen> loneSteps = List.copyOf(steps.subList(alone, steps.size()));
                assertEquals(64, loneSteps.get(0).tokens(), "alone, the long prompt did not get the whole --max-batch-tokens: " + loneSteps);
            }
        }
    }
}
