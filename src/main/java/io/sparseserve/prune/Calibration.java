package io.sparseserve.prune;

import io.sparseserve.model.InvalidInputException;

/**
 * Calibration samples: {@code nsamples} windows of {@code seqLen} token ids cut from the tokenized calibration text at
 * seeded random offsets, drawn exactly as the SparseGPT reference's data loaders do
 * ({@code random.seed(seed); i = random.randint(0, n - seqlen - 1)} per sample, {@code datautils.py}).
 */
public record Calibration(int[][] samples, int seqLen) {

    public static Calibration sample(int[] ids, int nsamples, int seqLen, long seed) {
        if (nsamples < 1) throw new InvalidInputException("--nsamples must be at least 1, got " + nsamples);
        if (seqLen < 1) throw new InvalidInputException("--seq-len must be at least 1, got " + seqLen);
        if (ids.length == 0) throw new InvalidInputException("the calibration text is empty (no tokens)");
        if (ids.length < seqLen + 1) {
            throw new InvalidInputException("the calibration text has " + ids.length + " tokens; windows of --seq-len "
                    + seqLen + " need at least " + (seqLen + 1));
        }
        PythonRandom rnd = new PythonRandom(seed);
        int[][] samples = new int[nsamples][];
        for (int s = 0; s < nsamples; s++) {
            int i = (int) rnd.randint(0, ids.length - seqLen - 1);
            samples[s] = java.util.Arrays.copyOfRange(ids, i, i + seqLen);
        }
        return new Calibration(samples, seqLen);
    }

    public int nsamples() {
        return samples.length;
    }

    public long tokens() {
        return (long) samples.length * seqLen;
    }
}
