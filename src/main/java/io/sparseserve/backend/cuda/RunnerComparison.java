package io.sparseserve.backend.cuda;

import io.sparseserve.backend.Logits;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.Step;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Issue 8's correctness check of a device runner against a reference runner (the CPU's) on the same model: one
 * sequence, its prompt in one step with every row's logits, then {@code newTokens} greedy decode steps that both
 * runners take with the reference's choice (so that one near-tie does not send them down different paths).
 * <ul>
 *   <li>logits: every row within {@code tolerance} × the row's largest |reference logit|;</li>
 *   <li>greedy ids: the device's choice equals the reference's wherever the reference's top-two margin exceeds that
 *       same bound (a near-tie may flip). Even decode steps ask for logits (compared as rows, argmax taken on the
 *       host), odd steps ask the device for its own argmax ({@link Step.Output#LAST_ARGMAX}).</li>
 * </ul>
 */
public final class RunnerComparison {
    private RunnerComparison() {}

    /** Both runners must be fresh (no blocks in use) and hold {@code prompt.length + newTokens} positions. */
    public static Map<String, Object> compare(ModelRunner reference, ModelRunner device, int[] prompt, int newTokens,
                                              double tolerance) {
        int vocab = reference.config().vocab();
        int positions = prompt.length + newTokens;
        int blockSize = reference.blockSize();
        if (device.blockSize() != blockSize) throw new IllegalArgumentException("block sizes differ");
        int blocks = (positions + blockSize - 1) / blockSize;
        if (blocks > Math.min(reference.kvBlocks(), device.kvBlocks())) throw new IllegalArgumentException(blocks + " KV blocks needed");
        int[] table = new int[blocks];
        for (int i = 0; i < blocks; i++) table[i] = i;
        float[] refLogits = new float[prompt.length * vocab], devLogits = new float[prompt.length * vocab];
        int[] refPick = new int[1], devPick = new int[1];

        Step step = new Step(Math.max(prompt.length, 1), 1);
        step.add(prompt, 0, prompt.length, 0, table, blocks, Step.Output.ALL_LOGITS);
        reference.forward(step, refLogits, null);
        device.forward(step, devLogits, null);
        double worst = 0;
        int rows = prompt.length, failedRows = 0;
        for (int r = 0; r < prompt.length; r++) {
            double e = rowError(refLogits, devLogits, r * vocab, vocab);
            worst = Math.max(worst, e);
            if (e > tolerance) failedRows++;
        }
        int next = Logits.argmax(refLogits, (prompt.length - 1) * vocab, vocab);
        int checked = 0, mismatches = 0, nearTies = 0;
        int[] one = new int[1];
        for (int i = 0; i < newTokens - 1; i++) {
            boolean logitsStep = i % 2 == 0;
            one[0] = next;
            step.clear();
            step.add(one, 0, 1, prompt.length + i, table, blocks, Step.Output.LAST_LOGITS);
            reference.forward(step, refLogits, null);
            if (logitsStep) {
                device.forward(step, devLogits, null);
                double e = rowError(refLogits, devLogits, 0, vocab);
                worst = Math.max(worst, e);
                rows++;
                if (e > tolerance) failedRows++;
                devPick[0] = Logits.argmax(devLogits, 0, vocab);
            } else {
                step.clear();
                step.add(one, 0, 1, prompt.length + i, table, blocks, Step.Output.LAST_ARGMAX);
                device.forward(step, devLogits, devPick);
            }
            refPick[0] = Logits.argmax(refLogits, 0, vocab);
            if (margin(refLogits, vocab) > tolerance * maxAbs(refLogits, 0, vocab)) {
                checked++;
                if (devPick[0] != refPick[0]) mismatches++;
            } else {
                nearTies++;
            }
            next = refPick[0];
        }
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("device", device.device());
        r.put("reference", reference.device());
        r.put("tolerance", tolerance);
        r.put("logit_rows", rows);
        r.put("logit_rows_failed", failedRows);
        r.put("max_row_error_over_max_logit", worst);
        r.put("greedy_steps_checked", checked);
        r.put("greedy_mismatches", mismatches);
        r.put("greedy_near_ties_skipped", nearTies);
        r.put("pass", failedRows == 0 && mismatches == 0);
        return r;
    }

    /**
     * Greedy ids of {@code newTokens} tokens after {@code prompt}, each runner following its own choices (a fresh
     * runner, no blocks in use): issue 12's check that a layer split ({@code cuda:0,0}) generates exactly what one
     * stage ({@code cuda:0}) does. The prompt in one step, then one decode step per token asking for the argmax.
     */
    public static int[] greedy(ModelRunner runner, int[] prompt, int newTokens) {
        int positions = prompt.length + newTokens;
        int blocks = (positions + runner.blockSize() - 1) / runner.blockSize();
        if (blocks > runner.kvBlocks()) throw new IllegalArgumentException(blocks + " KV blocks needed");
        int[] table = new int[blocks];
        for (int i = 0; i < blocks; i++) table[i] = i;
        int[] out = new int[newTokens], pick = new int[1], one = new int[1];
        float[] unused = new float[0];
        Step step = new Step(Math.max(prompt.length, 1), 1);
        step.add(prompt, 0, prompt.length, 0, table, blocks, Step.Output.LAST_ARGMAX);
        runner.forward(step, unused, pick);
        for (int i = 0; i < newTokens; i++) {
            out[i] = pick[0];
            if (i + 1 == newTokens) break;
            one[0] = pick[0];
            step.clear();
            step.add(one, 0, 1, prompt.length + i, table, blocks, Step.Output.LAST_ARGMAX);
            runner.forward(step, unused, pick);
        }
        return out;
    }

    /** max_i |dev_i - ref_i| / max_i |ref_i| over one row. */
    static double rowError(float[] ref, float[] dev, int off, int n) {
        double maxRef = maxAbs(ref, off, n), maxDiff = 0;
        for (int i = 0; i < n; i++) {
            double d = Math.abs((double) dev[off + i] - ref[off + i]);
            if (Double.isNaN(d)) return Double.POSITIVE_INFINITY;
            maxDiff = Math.max(maxDiff, d);
        }
        return maxRef == 0 ? maxDiff : maxDiff / maxRef;
    }

    static double maxAbs(float[] x, int off, int n) {
        double m = 0;
        for (int i = 0; i < n; i++) m = Math.max(m, Math.abs(x[off + i]));
        return m;
    }

    /** Largest minus second largest of row 0. */
    static double margin(float[] x, int n) {
        double a = Double.NEGATIVE_INFINITY, b = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            if (x[i] > a) {
                b = a;
                a = x[i];
            } else if (x[i] > b) {
                b = x[i];
            }
        }
        return a - b;
    }
}
