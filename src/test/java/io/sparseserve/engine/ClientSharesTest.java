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
    @Test
    void aShortPromptIsNotQueuedBehindAnotherClientsLongPrefill(@TempDir Path tmp) throws Exception {
        Path dir = tmp.resolve("ctx4k");
        SyntheticModel.write(new SyntheticModel.Shape(Family.LLAMA, 64, 2, 4, 4, 128, 4096, 4096), DType.F32, 3,
                TestData.bundledModel().resolve("tokenizer.json"), dir);
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
}
