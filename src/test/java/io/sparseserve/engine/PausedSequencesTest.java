package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.TestData;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Sequences paused by slow readers give their running slots and KV blocks back when others wait, and are recomputed
 * to the same tokens when their readers come back.
 */
class PausedSequencesTest {
    static Model model;
    static Tokenizer tokenizer;

    @BeforeAll
    static void load() {
        model = Model.load(TestData.bundledModel());
        tokenizer = Tokenizer.load(TestData.bundledModel().resolve("tokenizer.json"));
    }

    @AfterAll
    static void close() {
        tokenizer.close();
        model.close();
    }

    static GenerationRequest request(String prompt, int maxNew) {
        return new GenerationRequest("t", tokenizer.encode(prompt), SamplingParams.greedy(), maxNew, 0, List.of(),
                new int[0], true, -1);
    }

    /** A sink that pauses its own sequence after its first delta, like a client that stopped reading. */
    static final class StallingSink extends CollectingSink {
        final CountDownLatch firstDelta = new CountDownLatch(1);
        volatile Engine.Handle handle;

        @Override
        public void onDelta(Delta delta) {
            super.onDelta(delta);
            if (firstDelta.getCount() == 1) {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                while (handle == null && System.nanoTime() < deadline) Thread.onSpinWait(); // submit() has not returned yet
                handle.pause(); // on the scheduler thread, before its next step
                firstDelta.countDown();
            }
        }
    }

    static void await(String what, BooleanSupplier condition) {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out waiting for " + what);
            LockSupport.parkNanos(TimeUnit.MILLISECONDS.toNanos(2));
        }
    }

    @Test
    void pausedSequencesYieldTheirSlotsAndBlocksAndResumeToTheSameTokens() throws Exception {
        Generator.Result[] alone = new Generator.Result[2];
        String[] prompts = {"The cat", "Once upon a time"};
        for (int i = 0; i < 2; i++) {
            GenerationRequest r = request(prompts[i], 40);
            alone[i] = new Generator(model, tokenizer, ModelRunners.cpu())
                    .generate(r.promptIds(), r.sampling(), r.maxNewTokens(), r.ignoreEos(), null);
        }
        // Two running slots, both taken by readers that stop after their first token.
        try (Engine engine = new Engine(model, tokenizer, ModelRunners.cpu(),
                new Engine.Config(64, 2, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE), EngineObserver.NONE)) {
            StallingSink[] stalled = {new StallingSink(), new StallingSink()};
            for (int i = 0; i < 2; i++) {
                stalled[i].handle = engine.submit(request(prompts[i], 40), stalled[i]);
            }
            for (StallingSink s : stalled) assertTrue(s.firstDelta.await(30, TimeUnit.SECONDS));

            // A third request gets a slot and finishes while both readers are stalled.
            CollectingSink third = new CollectingSink();
            engine.submit(request("fun main() {", 8), third);
            assertEquals(8, third.await().tokenIds().length);
            await("both stalled sequences parked", () -> engine.parked() == 2 && engine.running() == 0);
            assertEquals(engine.kvTotalBlocks(), engine.kvFreeBlocks(), "parked sequences still hold KV blocks");

            // The readers come back: recomputed, they give exactly the tokens they give alone.
            for (StallingSink s : stalled) s.handle.resume();
            for (int i = 0; i < 2; i++) assertArrayEquals(alone[i].tokenIds(), stalled[i].await().tokenIds());
            assertTrue(engine.awaitIdle(Duration.ofSeconds(30)));
            assertEquals(0, engine.parked());
            assertEquals(engine.kvTotalBlocks(), engine.kvFreeBlocks());
        }
    }

    @Test
    void cancellingAParkedSequenceFreesIt() throws Exception {
        try (Engine engine = new Engine(model, tokenizer, ModelRunners.cpu(),
                new Engine.Config(64, 1, 16, 0, RunnerConfig.DEFAULT_BLOCK_SIZE), EngineObserver.NONE)) {
            StallingSink stalled = new StallingSink();
            stalled.handle = engine.submit(request("The cat", 40), stalled);
            assertTrue(stalled.firstDelta.await(30, TimeUnit.SECONDS));
            CollectingSink other = new CollectingSink();
            engine.submit(request("The", 4), other);
            other.await();
            await("the stalled sequence parked", () -> engine.parked() == 1);
            stalled.handle.cancel();
            assertTrue(engine.awaitIdle(Duration.ofSeconds(30)));
            assertEquals(0, engine.parked());
            assertEquals(0, engine.running());
        }
    }
}
