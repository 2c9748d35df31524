package io.sparseserve.engine;

import io.sparseserve.backend.Logits;
import java.util.Arrays;
import java.util.Objects;
import java.util.SplittableRandom;

/**
 * Picks the next token of one sequence from a row of logits, with the semantics of Hugging Face {@code generate}
 * and vLLM, in this order:
 * <ol>
 *   <li>repetition penalty over the tokens of the prompt and the output: a positive logit is divided by the
 *       penalty, a negative one multiplied (Hugging Face {@code RepetitionPenaltyLogitsProcessor});</li>
 *   <li>presence and frequency penalties over the output tokens: {@code logit -= count * frequency + presence}
 *       for every token with {@code count > 0} (OpenAI's definition, as vLLM applies it);</li>
 *   <li>temperature 0: the argmax (ties to the lowest id), done;</li>
 *   <li>otherwise logits / temperature, softmax, then top-k, top-p (nucleus: the smallest set of most likely tokens
 *       whose probability adds up to at least p, never empty), min-p (drop tokens less likely than
 *       {@code minP * pMax}), each on the distribution renormalised after the previous filter;</li>
 *   <li>a draw from what is left, with a {@link SplittableRandom} seeded from the parameters.</li>
 * </ol>
 *
 * <p>Nothing is allocated per token. The token history lives here, updated incrementally through
 * {@link #acceptPrompt} and {@link #accept}: an {@code int[vocab]} count of each token in the output, a
 * {@code boolean[vocab]} of tokens seen in prompt or output and the list of those tokens, so penalties cost
 * O(distinct tokens seen) and are only allocated when the parameters have penalties. Nothing sorts the vocabulary:
 * top-k selects with a bounded heap (O(V log k)); top-p alone uses a histogram of the probability mass and sorts
 * only the tokens of the bucket where the nucleus ends; without top-k and top-p a draw is two linear passes.
 *
 * <p>The caller's logits are never modified (penalties work on a copy). The per-call buffers are in a
 * {@link Scratch}, which samplers used from one thread (the scheduler's) may share to save memory.
 * A sampler belongs to one sequence and is not thread-safe.
 */
public final class Sampler {
    /** Weight histogram: float bits shifted right by this keep the exponent and four mantissa bits. */
    private static final int BUCKET_SHIFT = 19;
    private static final int BUCKETS = (Float.floatToRawIntBits(1f) >>> BUCKET_SHIFT) + 1;

    private final SamplingParams params;
    private final int vocabSize;
    private final SplittableRandom random;
    private final Scratch scratch;

    // Token history for penalties; null when the parameters have none.
    private final int[] outputCounts; // per token: times it occurs in the output
    private final boolean[] seen; // per token: occurs in the prompt (if repetition penalty) or the output
    private int[] seenTokens; // the tokens with seen[t], in the order first seen
    private int seenCount;

    /** Per-call buffers: the penalised logits and the candidate list. Use from one thread at a time. */
    public static final class Scratch {
        private final int vocabSize;
        private final float[] work;
        private int[] ids = new int[256];
        private float[] values = new float[256];
        private long[] keys = new long[256];
        private final int[] bucketCount = new int[BUCKETS];
        private final double[] bucketMass = new double[BUCKETS];

        public Scratch(int vocabSize) {
            if (vocabSize <= 0) throw new IllegalArgumentException("vocabSize must be > 0, got " + vocabSize);
            this.vocabSize = vocabSize;
            this.work = new float[vocabSize];
        }

        /** Grows the candidate arrays to hold {@code m} entries (rare: a large top-k, a wide nucleus). */
        private void ensure(int m) {
            if (ids.length < m) {
                int capacity = Math.min(vocabSize, Math.max(m, 2 * ids.length));
                ids = Arrays.copyOf(ids, capacity);
                values = Arrays.copyOf(values, capacity);
            }
        }

        private long[] keys(int m) {
            if (keys.length < m) keys = new long[Math.min(vocabSize, Math.max(m, 2 * keys.length))];
            return keys;
        }
    }

    public Sampler(SamplingParams params, int vocabSize) {
        this(params, vocabSize, new Scratch(vocabSize));
    }

    /** With shared {@code scratch} (its vocabulary size must be at least {@code vocabSize}). */
    public Sampler(SamplingParams params, int vocabSize, Scratch scratch) {
        this.params = params.validate();
        if (vocabSize <= 0) throw new IllegalArgumentException("vocabSize must be > 0, got " + vocabSize);
        if (scratch.vocabSize < vocabSize) {
            throw new IllegalArgumentException("scratch for " + scratch.vocabSize + " tokens, need " + vocabSize);
        }
        this.vocabSize = vocabSize;
        this.scratch = scratch;
        this.random = new SplittableRandom(params.seed());
        if (params.hasPenalties()) {
            outputCounts = new int[vocabSize];
            seen = new boolean[vocabSize];
            seenTokens = new int[Math.min(vocabSize, 1024)];
        } else {
            outputCounts = null;
            seen = null;
        }
    }

    public SamplingParams params() {
        return params;
    }

    /** Records prompt tokens: they count for the repetition penalty only. */
    public void acceptPrompt(int[] ids, int from, int to) {
        Objects.checkFromToIndex(from, to, ids.length);
        if (seen == null || params.repetitionPenalty() == 1f) return;
        for (int i = from; i < to; i++) markSeen(Objects.checkIndex(ids[i], vocabSize));
    }

    public void acceptPrompt(int[] ids) {
        acceptPrompt(ids, 0, ids.length);
    }

    /** Records a generated token (whether this sampler chose it or not). O(1), no allocation. */
    public void accept(int token) {
        Objects.checkIndex(token, vocabSize);
        if (outputCounts == null) return;
        markSeen(token);
        outputCounts[token]++;
    }

    private void markSeen(int token) {
        if (seen[token]) return;
        seen[token] = true;
        if (seenCount == seenTokens.length) { // at most log2(vocab / 1024) times per sequence
            seenTokens = Arrays.copyOf(seenTokens, Math.min(vocabSize, 2 * seenTokens.length));
        }
        seenTokens[seenCount++] = token;
    }

    /** The next token for the logits {@code logits[offset, offset + vocabSize)}. Call {@link #accept} with it. */
    public int sample(float[] logits, int offset) {
        Objects.checkFromIndexSize(offset, vocabSize, logits.length);
        float[] src = penalised(logits, offset);
        int base = src == logits ? offset : 0;
        if (params.isGreedy()) return argmax(src, base, vocabSize);
        double invTemperature = 1.0 / params.temperature();
        if (hasTopKOrTopP()) return draw(filter(src, base, invTemperature));
        return sampleAll(src, base, invTemperature);
    }

    /** Index of the largest of {@code logits[offset, offset + n)}, the lowest on ties; NaN is never chosen. */
    public static int argmax(float[] logits, int offset, int n) {
        return Logits.argmax(logits, offset, n);
    }

    /**
     * Log-softmax of the raw logits (before penalties and temperature, like vLLM's default and OpenAI's
     * {@code logprobs}) for {@code chosen} and the {@code n} most likely tokens. Allocates the result only.
     */
    public TopLogprobs topLogprobs(float[] logits, int offset, int n, int chosen) {
        Objects.checkFromIndexSize(offset, vocabSize, logits.length);
        Objects.checkIndex(chosen, vocabSize);
        float max = logits[offset + argmax(logits, offset, vocabSize)];
        double sum = 0;
        for (int i = 0; i < vocabSize; i++) sum += Math.exp(logits[offset + i] - max);
        double logZ = max + Math.log(sum);
        int count = selectTop(logits, offset, Math.clamp(n, 0, vocabSize));
        int[] ids = Arrays.copyOf(scratch.ids, count);
        float[] logprobs = new float[count];
        for (int j = 0; j < count; j++) logprobs[j] = (float) (scratch.values[j] - logZ);
        return new TopLogprobs(chosen, (float) (logits[offset + chosen] - logZ), ids, logprobs);
    }

    private void applyPenalties(float[] work) {
        float repetition = params.repetitionPenalty();
        float presence = params.presencePenalty();
        float frequency = params.frequencyPenalty();
        for (int j = 0; j < seenCount; j++) {
            int t = seenTokens[j];
            float logit = work[t];
            if (repetition != 1f) logit = logit > 0f ? logit / repetition : logit * repetition;
            int count = outputCounts[t];
            if (count > 0) logit -= count * frequency + presence;
            work[t] = logit;
        }
    }

    /** The logits themselves, or a penalised copy in the scratch when tokens have been seen. */
    private float[] penalised(float[] logits, int offset) {
        if (seenCount == 0) return logits;
        System.arraycopy(logits, offset, scratch.work, 0, vocabSize);
        applyPenalties(scratch.work);
        return scratch.work;
    }

    private boolean hasTopKOrTopP() {
        return (params.topK() > 0 && params.topK() < vocabSize) || params.topP() < 1f;
    }

    /**
     * Leaves in the scratch the candidates that top-k, top-p and min-p keep, as weights relative to the most likely
     * token; returns how many. With top-k they are sorted, most likely first; with top-p alone they are not.
     */
    private int filter(float[] src, int base, double invTemperature) {
        int topK = params.topK();
        if (topK > 0 && topK < vocabSize) {
            int n = selectTop(src, base, topK);
            return minP(nucleus(n, toWeights(n, invTemperature)), true);
        }
        return minP(nucleusOfVocabulary(src, base, invTemperature), false);
    }

    /**
     * Top-p over the whole vocabulary without sorting it. One pass computes every weight (into the scratch) and a
     * histogram of probability mass by the weight's float exponent and top four mantissa bits (16 buckets per
     * octave). Walking the buckets from the top finds the bucket where the cumulative mass reaches p: every token of
     * a higher bucket is in the nucleus, and only that one bucket is sorted to cut it exactly. The kept tokens are
     * left in the scratch in id order, then the boundary bucket's in decreasing order.
     */
    private int nucleusOfVocabulary(float[] src, int base, double invTemperature) {
        float max = src[base + argmax(src, base, vocabSize)];
        float[] w = scratch.work; // may be src itself (penalised logits): each slot is read before it is written
        int[] bucketCount = scratch.bucketCount;
        double[] bucketMass = scratch.bucketMass;
        Arrays.fill(bucketCount, 0);
        Arrays.fill(bucketMass, 0);
        double z = 0;
        for (int i = 0; i < vocabSize; i++) {
            float x = weight(src[base + i], max, invTemperature);
            w[i] = x;
            z += x;
            int b = bucket(x);
            bucketCount[b]++;
            bucketMass[b] += x;
        }
        double target = params.topP() * z;
        double above = 0; // mass of the buckets above `boundary`, all kept
        int keptAbove = 0;
        int boundary = BUCKETS - 1;
        while (boundary > 0 && above + bucketMass[boundary] < target) {
            above += bucketMass[boundary];
            keptAbove += bucketCount[boundary];
            boundary--;
        }
        scratch.ensure(keptAbove + bucketCount[boundary]);
        int[] ids = scratch.ids;
        float[] values = scratch.values;
        long[] keys = scratch.keys(bucketCount[boundary]);
        int n = 0;
        int inBoundary = 0;
        for (int i = 0; i < vocabSize; i++) {
            int b = bucket(w[i]);
            if (b > boundary) {
                ids[n] = i;
                values[n++] = w[i];
            } else if (b == boundary) {
                // Sorts by weight (the bits of a non-negative float order like it), then by lower id.
                keys[inBoundary++] = (long) Float.floatToRawIntBits(w[i]) << 32 | (0xFFFF_FFFFL & ~i);
            }
        }
        Arrays.sort(keys, 0, inBoundary);
        double cumulative = above;
        for (int j = inBoundary - 1; j >= 0 && (cumulative < target || n == 0); j--) {
            float x = Float.intBitsToFloat((int) (keys[j] >>> 32));
            ids[n] = ~(int) keys[j];
            values[n++] = x;
            cumulative += x;
        }
        return n;
    }

    /** Histogram bucket of a weight in [0, 1]: its float bits without sign, less the low 19 mantissa bits. */
    private static int bucket(float weight) {
        return Float.floatToRawIntBits(weight) >>> BUCKET_SHIFT;
    }

    /** No top-k or top-p: weights (min-p applied) written to the scratch, then one draw over the vocabulary. */
    private int sampleAll(float[] src, int base, double invTemperature) {
        int best = argmax(src, base, vocabSize);
        float max = src[base + best];
        float minP = params.minP();
        float[] w = scratch.work; // may be src itself (penalised logits): each slot is read before it is written
        double total = 0;
        for (int i = 0; i < vocabSize; i++) {
            float p = weight(src[base + i], max, invTemperature);
            if (p < minP) p = 0f;
            w[i] = p;
            total += p;
        }
        double u = random.nextDouble() * total;
        double cumulative = 0;
        for (int i = 0; i < vocabSize; i++) {
            cumulative += w[i];
            if (u < cumulative) return i;
        }
        return best; // only reached through rounding at the very end
    }

    /** Unnormalised probability relative to the most likely token: exp((logit - max) / T), in (0, 1]. */
    private static float weight(float logit, float max, double invTemperature) {
        return (float) Math.exp((logit - max) * invTemperature);
    }

    /** Turns the sorted candidate logits into weights relative to the first (the maximum); returns their sum. */
    private double toWeights(int n, double invTemperature) {
        float[] v = scratch.values;
        float max = v[0];
        double total = 0;
        for (int j = 0; j < n; j++) {
            v[j] = weight(v[j], max, invTemperature);
            total += v[j];
        }
        return total;
    }

    /** How many of the sorted candidates top-p keeps: those whose more likely predecessors add up to < p. */
    private int nucleus(int n, double total) {
        if (params.topP() >= 1f) return n;
        double target = params.topP() * total;
        double cumulative = 0;
        int kept = 0;
        while (kept < n && cumulative < target) cumulative += scratch.values[kept++];
        return Math.max(kept, 1);
    }

    /**
     * How many of the first {@code n} candidates min-p keeps: those with a weight (relative to the most likely
     * token, whose weight is 1) of at least min-p. Sorted candidates keep a prefix; others are compacted in order.
     */
    private int minP(int n, boolean sorted) {
        float minP = params.minP();
        if (minP == 0f) return n;
        float[] values = scratch.values;
        int[] ids = scratch.ids;
        if (sorted) {
            int kept = 1;
            while (kept < n && values[kept] >= minP) kept++;
            return kept;
        }
        int kept = 0;
        for (int j = 0; j < n; j++) {
            if (values[j] >= minP) {
                ids[kept] = ids[j];
                values[kept++] = values[j];
            }
        }
        return kept; // the most likely token has weight 1 >= min-p, so never 0
    }

    private int draw(int n) {
        float[] w = scratch.values;
        double total = 0;
        for (int j = 0; j < n; j++) total += w[j];
        double u = random.nextDouble() * total;
        double cumulative = 0;
        for (int j = 0; j < n; j++) {
            cumulative += w[j];
            if (u < cumulative) return scratch.ids[j];
        }
        return scratch.ids[n - 1];
    }

    /**
     * Puts the {@code m} largest of {@code src[base, base + vocabSize)} into the scratch candidates, largest first
     * (ties: lower id first), with a min-heap of size m: O(V log m), and O(V) when most values lose to the heap's
     * root, which is the common case for logits. Returns how many (m clamped to the vocabulary).
     */
    private int selectTop(float[] src, int base, int m) {
        m = Math.min(m, vocabSize);
        scratch.ensure(m);
        int[] ids = scratch.ids;
        float[] values = scratch.values;
        int size = 0;
        for (int i = 0; i < vocabSize; i++) {
            float v = src[base + i];
            if (size < m) {
                ids[size] = i;
                values[size] = v;
                siftUp(ids, values, size++);
            } else if (v > values[0]) { // ids ascend, so an equal value never beats the root
                ids[0] = i;
                values[0] = v;
                siftDown(ids, values, 0, size);
            }
        }
        for (int end = size - 1; end > 0; end--) { // heap sort: the worst goes last
            swap(ids, values, 0, end);
            siftDown(ids, values, 0, end);
        }
        return size;
    }

    /** Heap order: the root is the worst candidate (smallest value; on ties, the larger id). */
    private static boolean worse(int[] ids, float[] values, int a, int b) {
        return values[a] < values[b] || (values[a] == values[b] && ids[a] > ids[b]);
    }

    private static void siftUp(int[] ids, float[] values, int i) {
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!worse(ids, values, i, parent)) return;
            swap(ids, values, i, parent);
            i = parent;
        }
    }

    private static void siftDown(int[] ids, float[] values, int i, int size) {
        while (true) {
            int left = 2 * i + 1;
            if (left >= size) return;
            int worst = left;
            int right = left + 1;
            if (right < size && worse(ids, values, right, left)) worst = right;
            if (!worse(ids, values, worst, i)) return;
            swap(ids, values, i, worst);
            i = worst;
        }
    }

    private static void swap(int[] ids, float[] values, int a, int b) {
        int id = ids[a];
        ids[a] = ids[b];
        ids[b] = id;
        float v = values[a];
        values[a] = values[b];
        values[b] = v;
    }

    /**
     * The candidates {@link #sample} draws from (sorted with top-k, in no promised order with top-p alone), for tests
     * against a reference; only with top-k or top-p (without them every token with a weight of at least min-p is a
     * candidate).
     */
    int[] candidatesForTest(float[] logits, int offset) {
        if (params.isGreedy() || !hasTopKOrTopP()) throw new IllegalStateException("needs top-k or top-p");
        float[] src = penalised(logits, offset);
        int kept = filter(src, src == logits ? offset : 0, 1.0 / params.temperature());
        return Arrays.copyOf(scratch.ids, kept);
    }
}
