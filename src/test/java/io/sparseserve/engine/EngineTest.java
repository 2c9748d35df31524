package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The scheduler on the bundled model, against the single-sequence {@link Generator}. */
class EngineTest {
    static Model model;
    static Tokenizer tokenizer;
    static RunnerFactory backend; // the engines'

    static final String[] PROMPTS = {
        "The cat", "Once upon a time", "fun main() {", "val x =", "class Foo", "import kotlin", "/**", "if (a > b)",
        "The quick brown fox", "data class", "return", "for (i in 0 until n)", "println(", "// TODO", "when (x) {", "A"
    };

    @BeforeAll
    static void load() {
        model = Model.load(TestData.bundledModel());
        tokenizer = Tokenizer.load(TestData.bundledModel().resolve("tokenizer.json"));
        backend = ModelRunners.cpu();
    }

    @AfterAll
    static void close() {
        tokenizer.close();
        model.close();
    }

    static GenerationRequest request(String prompt, SamplingParams p, int maxNew) {
        return new GenerationRequest("t", tokenizer.encode(prompt), p, maxNew, 0, List.of(), new int[0], false, -1);
    }

    static Generator.Result alone(GenerationRequest r) {
        // Its own runner (the generator opens one per call): the engine's runs meanwhile.
        return new Generator(model, tokenizer, ModelRunners.cpu()).generate(r.promptIds(), r.sampling(), r.maxNewTokens(),
                r.ignoreEos(), null);
    }

    static void assertSameAs(Generator.Result expected, CollectingSink.Result actual) {
        assertArrayEquals(expected.tokenIds(), actual.tokenIds());
        assertEquals(expected.text(), actual.text());
        assertEquals(expected.finishReason().name(), actual.reason().name());
    }

    @Test
    void sixteenConcurrentRequestsGiveTheTokensEachGivesAlone() throws Exception {
        try (Engine engine = new Engine(model, tokenizer, backend, Engine.Config.defaults(), EngineObserver.NONE)) {
            List<GenerationRequest> requests = new ArrayList<>();
            for (int i = 0; i < 16; i++) {
                SamplingParams p = i % 4 == 3 ? new SamplingParams(0.8f, 40, 0.95f, 0f, 1.1f, 0f, 0f, i) : SamplingParams.greedy();
                requests.add(request(PROMPTS[i], p, 40 + i));
            }
            List<CollectingSink> sinks = new ArrayList<>();
            for (GenerationRequest r : requests) {
                CollectingSink sink = new CollectingSink();
                engine.submit(r, sink);
                sinks.add(sink);
            }
            for (int i = 0; i < 16; i++) assertSameAs(alone(requests.get(i)), sinks.get(i).await());
            assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
            assertEquals(engine.kvTotalBlocks(), engine.kvFreeBlocks());
        }
    }

    @Test
    void preemptedSequencesAreRecomputedWithTheSameResult() throws Exception {
        AtomicInteger preemptions = new AtomicInteger();
        EngineObserver obs = new EngineObserver() {
            @Override
            public void onPreempted() {
                preemptions.incrementAndGet();
            }
        };
        // Room for 8 blocks of 16 positions (the context is 128): a few sequences at a time, so some are preempted.
        long bytes = 8L * 16 * KvSizing.bytesPerToken(model.config(), KvDtype.F32);
        Engine.Config config = new Engine.Config(64, 8, 64, bytes, 16);
        try (Engine engine = new Engine(model, tokenizer, backend, config, obs)) {
            List<GenerationRequest> requests = new ArrayList<>();
            List<CollectingSink> sinks = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                GenerationRequest r = new GenerationRequest("p" + i, tokenizer.encode(PROMPTS[i]), SamplingParams.greedy(),
                        60, 0, List.of(), new int[0], true, -1);
                requests.add(r);
                CollectingSink sink = new CollectingSink();
                engine.submit(r, sink);
                sinks.add(sink);
            }
            for (int i = 0; i < requests.size(); i++) {
                CollectingSink.Result res = sinks.get(i).await();
                assertSameAs(alone(requests.get(i)), res);
            }
            assertTrue(preemptions.get() > 0, "the cache was meant to run out");
            assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
            assertEquals(engine.kvTotalBlocks(), engine.kvFreeBlocks());
        }
    }

    @Test
    void aCancelledSequenceStopsWithinOneStepAndFreesItsBlocks() throws Exception {
        CompletableFuture<Integer> cancelledAfter = new CompletableFuture<>();
        EngineObserver obs = new EngineObserver() {
            @Override
            public void onCancelled(int promptTokens, int completionTokens, long e2eNanos) {
                cancelledAfter.complete(completionTokens);
            }
        };
        try (Engine engine = new Engine(model, tokenizer, backend, Engine.Config.defaults(), obs)) {
            CountDownLatch fifth = new CountDownLatch(1);
            Engine.Handle[] handle = new Engine.Handle[1];
            AtomicInteger received = new AtomicInteger();
            CollectingSink sink = new CollectingSink() {
                @Override
                public void onDelta(Delta delta) {
                    super.onDelta(delta);
                    if (received.addAndGet(delta.tokenIds().length) >= 5 && fifth.getCount() > 0) {
                        // The scheduler can deliver five tokens before submit has returned the handle (seen in CI on
                        // a loaded machine): wait for it under the lock that the submitting thread holds.
                        Engine.Handle h;
                        synchronized (handle) {
                            h = handle[0];
                        }
                        h.cancel(); // on the scheduler thread, between two steps
                        fifth.countDown();
                    }
                }
            };
            GenerationRequest r = new GenerationRequest("c", tokenizer.encode("Once upon a time"), SamplingParams.greedy(),
                    100, 0, List.of(), new int[0], true, -1);
            synchronized (handle) {
                handle[0] = engine.submit(r, sink);
            }
            assertTrue(fifth.await(30, TimeUnit.SECONDS));
            assertEquals(received.get(), cancelledAfter.get(30, TimeUnit.SECONDS), "no token after the cancelling one");
            assertTrue(engine.awaitIdle(Duration.ofSeconds(10)));
            assertEquals(engine.kvTotalBlocks(), engine.kvFreeBlocks());
            assertFalse(sink.result.isDone(), "a cancelled sequence gets no finish event");
        }
    }

    @Test
    void aFullQueueRefusesAndInvalidRequestsNameTheField() throws Exception {
        Engine.Config config = new Engine.Config(64, 1, 1, 0, 16);
        try (Engine engine = new Engine(model, tokenizer, backend, config, EngineObserver.NONE)) {
            var e = assertThrows(InvalidInputException.class, () -> engine.submit(request("x", SamplingParams.greedy(), 200), new CollectingSink()));
            assertTrue(e.getMessage().startsWith("max_new_tokens"), e.getMessage());
            // One running, one waiting; the third has no room. Long sequences so the first two are still there.
            List<CollectingSink> sinks = new ArrayList<>();
            List<Engine.Handle> handles = new ArrayList<>();
            Engine.QueueFullException full = null;
            for (int i = 0; i < 50 && full == null; i++) {
                CollectingSink s = new CollectingSink();
                try {
                    handles.add(engine.submit(request("Once upon a time", SamplingParams.greedy(), 100), s));
                    sinks.add(s);
                } catch (Engine.QueueFullException q) {
                    full = q;
                }
            }
            assertTrue(full != null && full.getMessage().contains("--max-waiting"));
            handles.forEach(Engine.Handle::cancel);
            assertTrue(engine.awaitIdle(Duration.ofSeconds(30)));
            CollectingSink ok = new CollectingSink();
            engine.submit(request("The cat", SamplingParams.greedy(), 5), ok);
            assertEquals(5, ok.await().tokenIds().length);
        }
    }

    @Test
    void stopStringsEndTheTextAcrossTokensWithoutBeingEmitted() throws Exception {
        GenerationRequest plain = request("Once upon a time", SamplingParams.greedy(), 60);
        Generator.Result full = alone(plain);
        String text = full.text();
        assertTrue(text.length() > 20, text);
        // A stop string that spans the middle of the text: the output is everything before it.
        String stop = text.substring(10, 16);
        int at = text.indexOf(stop);
        try (Engine engine = new Engine(model, tokenizer, backend, Engine.Config.defaults(), EngineObserver.NONE)) {
            CollectingSink sink = new CollectingSink();
            engine.submit(new GenerationRequest("s", plain.promptIds(), SamplingParams.greedy(), 60, 0,
                    List.of("never appears", stop), new int[0], false, -1), sink);
            CollectingSink.Result r = sink.await();
            assertEquals(FinishReason.STOP_SEQUENCE, r.reason());
            assertEquals(text.substring(0, at), r.text());
            for (TokenSink.Delta d : r.deltas()) assertFalse(d.text().contains(stop));
        }
    }

    @Test
    void longPromptsArePrefilledInChunksAlongsideDecodesWithTheSameResult() throws Exception {
        // 16 tokens per step: a 100-token prompt takes several steps, next to sequences that are decoding.
        Engine.Config config = new Engine.Config(16, 8, 64, 0, 16);
        StringBuilder longText = new StringBuilder();
        for (String p : PROMPTS) longText.append(p).append(' ');
        int[] longPrompt = java.util.Arrays.copyOf(tokenizer.encode(longText.toString().repeat(4)), 100);
        try (Engine engine = new Engine(model, tokenizer, backend, config, EngineObserver.NONE)) {
            List<GenerationRequest> requests = new ArrayList<>();
            List<CollectingSink> sinks = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                int[] ids = i % 2 == 0 ? tokenizer.encode(PROMPTS[i]) : longPrompt;
                GenerationRequest r = new GenerationRequest("l" + i, ids, SamplingParams.greedy(), 20, 0, List.of(),
                        new int[0], true, -1);
                requests.add(r);
                CollectingSink sink = new CollectingSink();
                engine.submit(r, sink);
                sinks.add(sink);
            }
            for (int i = 0; i < requests.size(); i++) assertSameAs(alone(requests.get(i)), sinks.get(i).await());
        }
    }

    @Test
    void stopTokenIdsEndTheSequenceAndMinNewTokensSuppressesThem() throws Exception {
        GenerationRequest plain = request("Once upon a time", SamplingParams.greedy(), 30);
        int[] ids = alone(plain).tokenIds();
        int stopId = ids[5];
        int first = 0;
        while (ids[first] != stopId) first++;
        try (Engine engine = new Engine(model, tokenizer, backend, Engine.Config.defaults(), EngineObserver.NONE)) {
            CollectingSink sink = new CollectingSink();
            engine.submit(new GenerationRequest("s", plain.promptIds(), SamplingParams.greedy(), 30, 0, List.of(),
                    new int[] {stopId}, false, -1), sink);
            CollectingSink.Result r = sink.await();
            assertEquals(FinishReason.EOS_TOKEN, r.reason());
            assertArrayEquals(java.util.Arrays.copyOf(ids, first + 1), r.tokenIds());

            CollectingSink late = new CollectingSink();
            engine.submit(new GenerationRequest("m", plain.promptIds(), SamplingParams.greedy(), 30, first + 2, List.of(),
                    new int[] {stopId}, false, -1), late);
            CollectingSink.Result m = late.await();
            assertTrue(m.tokenIds().length >= first + 2, "no stop token before min_new_tokens");
            // The first min_new_tokens tokens are drawn with the stop id suppressed.
            for (int i = 0; i < first + 2; i++) assertTrue(m.tokenIds()[i] != stopId, "token " + i);
        }
    }
}
