package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.model.InvalidInputException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class SamplerTest {

    private static SamplingParams params(float temperature, int topK, float topP, float minP, long seed) {
        return new SamplingParams(temperature, topK, topP, minP, 1f, 0f, 0f, seed);
    }

    private static float[] randomLogits(SplittableRandom random, int n, double scale) {
        float[] logits = new float[n];
        for (int i = 0; i < n; i++) logits[i] = (float) (random.nextGaussian() * scale);
        return logits;
    }

    private static float[] logitsOf(double... probabilities) {
        float[] logits = new float[probabilities.length];
        for (int i = 0; i < logits.length; i++) logits[i] = (float) Math.log(probabilities[i]);
        return logits;
    }

    /** Scalar argmax, lowest index on ties. */
    private static int referenceArgmax(float[] logits) {
        int best = 0;
        for (int i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    /**
     * Hugging Face semantics in double precision with a full sort: softmax(logits / T), top-k, top-p (keep a token
     * while the more likely ones add up to less than p), min-p, each renormalised after the previous one.
     */
    private static int[] referenceCandidates(float[] logits, float temperature, int topK, float topP, float minP) {
        Integer[] order = IntStream.range(0, logits.length).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
        int n = topK > 0 ? Math.min(topK, logits.length) : logits.length;
        double max = logits[order[0]];
        double[] p = new double[n];
        double sum = 0;
        for (int j = 0; j < n; j++) sum += p[j] = Math.exp((logits[order[j]] - max) / temperature);
        if (topK <= 0) { // normalise over the whole vocabulary (n == vocab size here anyway)
            sum = 0;
            for (float l : logits) sum += Math.exp((l - max) / temperature);
        }
        int kept = n;
        if (topP < 1f) {
            double cumulative = 0;
            kept = 0;
            while (kept < n && cumulative < topP) cumulative += p[kept++] / sum;
            kept = Math.max(kept, 1);
        }
        int afterMinP = 1;
        while (afterMinP < kept && p[afterMinP] / p[0] >= minP) afterMinP++;
        int[] ids = new int[afterMinP];
        for (int j = 0; j < afterMinP; j++) ids[j] = order[j];
        return ids;
    }

    @Test
    void argmaxTakesTheLowestIdOnTiesAndIgnoresNaN() {
        assertEquals(1, Sampler.argmax(new float[] {1f, 3f, 3f, 2f}, 0, 4));
        assertEquals(2, Sampler.argmax(new float[] {Float.NaN, 1f, 2f}, 0, 3));
        assertEquals(1, Sampler.argmax(new float[] {9f, 1f, 2f, 9f}, 1, 2)); // offset: the row is {1, 2}
        assertEquals(0, Sampler.argmax(new float[] {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY}, 0, 2));
    }

    @Test
    void greedyIsArgmax() {
        SplittableRandom random = new SplittableRandom(1);
        Sampler sampler = new Sampler(SamplingParams.greedy(), 500);
        for (int trial = 0; trial < 200; trial++) {
            float[] logits = randomLogits(random, 500, 2.0);
            if (trial % 10 == 0) logits[random.nextInt(500)] = logits[referenceArgmax(logits)]; // a tie
            assertEquals(referenceArgmax(logits), sampler.sample(logits, 0));
        }
    }

    @Test
    void sameSeedSameTokensDifferentSeedDifferentTokens() {
        SplittableRandom random = new SplittableRandom(2);
        float[][] steps = new float[200][];
        for (int i = 0; i < steps.length; i++) steps[i] = randomLogits(random, 1000, 1.0);
        SamplingParams p = new SamplingParams(0.9f, 50, 0.95f, 0.01f, 1.1f, 0.1f, 0.1f, 42);
        int[] a = run(new Sampler(p, 1000), steps);
        int[] b = run(new Sampler(p, 1000), steps);
        int[] c = run(new Sampler(new SamplingParams(0.9f, 50, 0.95f, 0.01f, 1.1f, 0.1f, 0.1f, 43), 1000), steps);
        assertArrayEquals(a, b);
        assertNotEquals(Arrays.toString(a), Arrays.toString(c));
    }

    private static int[] run(Sampler sampler, float[][] steps) {
        int[] tokens = new int[steps.length];
        for (int i = 0; i < steps.length; i++) {
            tokens[i] = sampler.sample(steps[i], 0);
            sampler.accept(tokens[i]);
        }
        return tokens;
    }

    @Test
    void topKOneAndTinyTopPAreGreedy() {
        SplittableRandom random = new SplittableRandom(3);
        Sampler topK1 = new Sampler(params(1.5f, 1, 1f, 0f, 5), 300);
        Sampler tinyTopP = new Sampler(params(1.5f, 0, 1e-6f, 0f, 6), 300);
        for (int trial = 0; trial < 200; trial++) {
            float[] logits = randomLogits(random, 300, 1.0);
            if (trial % 10 == 0) logits[random.nextInt(300)] = logits[referenceArgmax(logits)];
            int expected = referenceArgmax(logits);
            assertEquals(expected, topK1.sample(logits, 0));
            assertEquals(expected, tinyTopP.sample(logits, 0));
        }
    }

    /** The heap selection and the histogram nucleus keep exactly what a full sort in double precision keeps. */
    @Test
    void filtersMatchAFullSortReference() {
        SplittableRandom random = new SplittableRandom(4);
        int[] topKs = {0, 1, 5, 50, 999};
        float[] topPs = {1f, 0.95f, 0.5f, 0.01f};
        float[] minPs = {0f, 0.05f, 0.5f};
        float[] temperatures = {0.7f, 1f, 1.5f};
        double[] scales = {0.05, 1.0, 4.0}; // nearly flat (nucleus of thousands), ordinary, peaked
        int checked = 0;
        for (double scale : scales) {
            float[] logits = randomLogits(random, 2000, scale);
            for (int topK : topKs) {
                for (float topP : topPs) {
                    if (topK == 0 && topP == 1f) continue; // no candidate list: the linear path, tested below
                    for (float minP : minPs) {
                        for (float t : temperatures) {
                            Sampler sampler = new Sampler(params(t, topK, topP, minP, 0), 2000);
                            int[] expected = referenceCandidates(logits, t, topK, topP, minP);
                            String what = "scale " + scale + " k " + topK + " p " + topP + " minP " + minP + " T " + t;
                            int[] actual = sampler.candidatesForTest(logits, 0);
                            if (topK == 0) { // top-p alone: the same set, in no particular order
                                Arrays.sort(expected);
                                Arrays.sort(actual);
                            }
                            assertArrayEquals(expected, actual, what);
                            checked++;
                        }
                    }
                }
            }
        }
        assertEquals(3 * (4 * 5 - 1) * 3 * 3, checked);
    }

    private static double[] frequencies(Sampler sampler, float[] logits, int draws) {
        double[] counts = new double[logits.length];
        for (int i = 0; i < draws; i++) counts[sampler.sample(logits, 0)]++;
        for (int i = 0; i < counts.length; i++) counts[i] /= draws;
        return counts;
    }

    /** 20,000 draws: a standard deviation of at most 0.0035 per probability, so 0.015 is over four of them. */
    private static void assertDistribution(double[] expected, double[] actual) {
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 0.015, "token " + i + ": " + Arrays.toString(actual));
        }
    }

    @Test
    void samplesFromTheSoftmaxAtTemperatureOne() {
        float[] logits = logitsOf(0.1, 0.2, 0.3, 0.4);
        assertDistribution(new double[] {0.1, 0.2, 0.3, 0.4},
                frequencies(new Sampler(SamplingParams.random(1f, 9), 4), logits, 20_000));
    }

    @Test
    void temperatureSharpens() {
        float[] logits = logitsOf(0.1, 0.2, 0.3, 0.4); // at T = 0.5 probabilities go as p^2
        assertDistribution(new double[] {0.01 / 0.3, 0.04 / 0.3, 0.09 / 0.3, 0.16 / 0.3},
                frequencies(new Sampler(SamplingParams.random(0.5f, 10), 4), logits, 20_000));
    }

    @Test
    void filtersRenormaliseWhatTheyKeep() {
        float[] logits = logitsOf(0.1, 0.2, 0.3, 0.4);
        double[] topTwo = {0, 0, 3 / 7.0, 4 / 7.0};
        assertDistribution(topTwo, frequencies(new Sampler(params(1f, 2, 1f, 0f, 11), 4), logits, 20_000));
        // top-p 0.5: 0.4 alone is not enough, 0.4 + 0.3 is.
        assertDistribution(topTwo, frequencies(new Sampler(params(1f, 0, 0.5f, 0f, 12), 4), logits, 20_000));
        // min-p 0.6: 0.6 * 0.4 = 0.24, so 0.2 and 0.1 go (the linear path, no candidate list).
        assertDistribution(topTwo, frequencies(new Sampler(params(1f, 0, 1f, 0.6f, 13), 4), logits, 20_000));
        assertDistribution(new double[] {0, 0, 0, 1},
                frequencies(new Sampler(params(1f, 3, 0.3f, 0f, 14), 4), logits, 1000));
    }

    @Test
    void repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        SamplingParams p = new SamplingParams(0f, 0, 1f, 0f, 1.2f, 0f, 0f, 0);
        Sampler positive = new Sampler(p, 3);
        float[] logits = {2.0f, 1.9f, -1f};
        assertEquals(0, positive.sample(logits, 0));
        positive.accept(0); // 2.0 / 1.2 = 1.67 < 1.9
        assertEquals(1, positive.sample(logits, 0));
        assertArrayEquals(new float[] {2.0f, 1.9f, -1f}, logits); // the caller's logits are untouched

        Sampler negative = new Sampler(p, 2);
        negative.acceptPrompt(new int[] {0}); // prompt tokens count too: -1.0 * 1.2 = -1.2 < -1.1
        assertEquals(1, negative.sample(new float[] {-1.0f, -1.1f}, 0));

        Sampler encourage = new Sampler(new SamplingParams(0f, 0, 1f, 0f, 0.5f, 0f, 0f, 0), 2);
        encourage.accept(1); // 1.9 / 0.5 = 3.8 > 2.0
        assertEquals(1, encourage.sample(new float[] {2.0f, 1.9f}, 0));
    }

    @Test
    void presenceAndFrequencyPenaltiesCountOutputTokensOnly() {
        float[] logits = {1.0f, 0.9f};
        Sampler frequency = new Sampler(new SamplingParams(0f, 0, 1f, 0f, 1f, 0f, 0.04f, 0), 2);
        frequency.accept(0);
        assertEquals(0, frequency.sample(logits, 0)); // 1.0 - 0.04 = 0.96
        frequency.accept(0);
        frequency.accept(0);
        assertEquals(1, frequency.sample(logits, 0)); // 1.0 - 3 * 0.04 = 0.88

        Sampler presence = new Sampler(new SamplingParams(0f, 0, 1f, 0f, 1f, 0.2f, 0f, 0), 2);
        presence.acceptPrompt(new int[] {1, 1, 0});
        assertEquals(0, presence.sample(logits, 0)); // the prompt does not count
        presence.accept(0);
        assertEquals(1, presence.sample(logits, 0)); // 1.0 - 0.2 = 0.8
    }

    @Test
    void readsTheRowAtTheOffset() {
        SplittableRandom random = new SplittableRandom(5);
        float[] row = randomLogits(random, 100, 1.0);
        float[] batch = new float[300];
        Arrays.fill(batch, 50f); // rows of other sequences, which would win if read
        System.arraycopy(row, 0, batch, 100, 100);
        SamplingParams p = new SamplingParams(1f, 10, 0.9f, 0f, 1.3f, 0.5f, 0.5f, 77);
        Sampler a = new Sampler(p, 100);
        Sampler b = new Sampler(p, 100);
        for (int i = 0; i < 50; i++) {
            int ta = a.sample(row, 0);
            assertEquals(ta, b.sample(batch, 100));
            a.accept(ta);
            b.accept(ta);
        }
        assertEquals(Sampler.argmax(row, 0, 100), new Sampler(SamplingParams.greedy(), 100).sample(batch, 100));
    }

    @Test
    void samplersMayShareScratch() {
        SplittableRandom random = new SplittableRandom(6);
        Sampler.Scratch shared = new Sampler.Scratch(1000);
        SamplingParams p = new SamplingParams(1f, 40, 0.9f, 0f, 1.1f, 0f, 0f, 3);
        Sampler a = new Sampler(p, 1000, shared);
        Sampler b = new Sampler(p, 1000, shared);
        Sampler alone = new Sampler(p, 1000);
        for (int i = 0; i < 100; i++) {
            float[] logits = randomLogits(random, 1000, 2.0);
            int ta = a.sample(logits, 0);
            b.sample(randomLogits(random, 1000, 2.0), 0); // interleaved use of the same scratch
            assertEquals(alone.sample(logits, 0), ta);
            a.accept(ta);
            alone.accept(ta);
        }
    }

    @Test
    void topLogprobsAreTheLogSoftmaxOfTheRawLogits() {
        SplittableRandom random = new SplittableRandom(8);
        float[] logits = randomLogits(random, 1000, 3.0);
        logits[10] = logits[20] = 30f; // a tie at the top: lower id first
        double max = 30;
        double sum = 0;
        for (float l : logits) sum += Math.exp(l - max);
        double logZ = max + Math.log(sum);
        Sampler sampler = new Sampler(new SamplingParams(0.5f, 3, 0.5f, 0f, 2f, 0f, 0f, 0), 1000);
        sampler.accept(10); // penalties and temperature do not change the reported logprobs
        TopLogprobs top = sampler.topLogprobs(logits, 0, 5, 123);

        Integer[] order = IntStream.range(0, 1000).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.<Integer>comparingDouble(i -> -logits[i]).thenComparingInt(i -> i));
        assertEquals(5, top.ids().length);
        for (int j = 0; j < 5; j++) {
            assertEquals(order[j], top.ids()[j]);
            assertEquals(logits[order[j]] - logZ, top.logprobs()[j], 1e-5);
        }
        assertEquals(10, top.ids()[0]);
        assertEquals(20, top.ids()[1]);
        assertEquals(123, top.chosenId());
        assertEquals(logits[123] - logZ, top.chosenLogprob(), 1e-5);
        assertEquals(0, sampler.topLogprobs(logits, 0, 0, 5).ids().length);
    }

    @Test
    void greedyParamsAreValid() {
        SamplingParams greedy = SamplingParams.greedy();
        assertSame(greedy, greedy.validate());
        assertTrue(greedy.isGreedy());
        assertTrue(!greedy.hasPenalties());
    }

    @Test
    void validationNamesTheFieldAndItsRange() {
        record Case(SamplingParams params, String field, String range) {}
        List<Case> bad = List.of(
                new Case(new SamplingParams(-0.1f, 0, 1f, 0f, 1f, 0f, 0f, 0), "temperature", ">= 0"),
                new Case(new SamplingParams(Float.NaN, 0, 1f, 0f, 1f, 0f, 0f, 0), "temperature", ">= 0"),
                new Case(new SamplingParams(Float.POSITIVE_INFINITY, 0, 1f, 0f, 1f, 0f, 0f, 0), "temperature", ">= 0"),
                new Case(new SamplingParams(1f, -1, 1f, 0f, 1f, 0f, 0f, 0), "top_k", ">= 0"),
                new Case(new SamplingParams(1f, 0, 0f, 0f, 1f, 0f, 0f, 0), "top_p", "(0, 1]"),
                new Case(new SamplingParams(1f, 0, 1.5f, 0f, 1f, 0f, 0f, 0), "top_p", "(0, 1]"),
                new Case(new SamplingParams(1f, 0, 1f, 1f, 1f, 0f, 0f, 0), "min_p", "[0, 1)"),
                new Case(new SamplingParams(1f, 0, 1f, -0.1f, 1f, 0f, 0f, 0), "min_p", "[0, 1)"),
                new Case(new SamplingParams(1f, 0, 1f, 0f, 0f, 0f, 0f, 0), "repetition_penalty", "> 0"),
                new Case(new SamplingParams(1f, 0, 1f, 0f, 1f, 2.5f, 0f, 0), "presence_penalty", "[-2, 2]"),
                new Case(new SamplingParams(1f, 0, 1f, 0f, 1f, 0f, -2.01f, 0), "frequency_penalty", "[-2, 2]"));
        for (Case c : bad) {
            var e = assertThrows(InvalidInputException.class, c.params()::validate, c.field());
            assertTrue(e.getMessage().startsWith(c.field() + " must be "), e.getMessage());
            assertTrue(e.getMessage().contains(c.range()), e.getMessage());
            assertThrows(InvalidInputException.class, () -> new Sampler(c.params(), 10)); // samplers validate too
        }
        new SamplingParams(0f, 0, 1f, 0f, 1f, -2f, 2f, 0).validate(); // bounds are inclusive
        new SamplingParams(2f, 5, 0.001f, 0.999f, 0.01f, 0f, 0f, 0).validate();
    }
}
