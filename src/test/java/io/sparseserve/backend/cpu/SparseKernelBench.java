package io.sparseserve.backend.cpu;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.DTypeConvert;
import io.sparseserve.tensor.MaskedMatrix;
import io.sparseserve.tensor.NmMatrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Kernel micro-benchmark in the manner of JMH (warm-up until compiled, then alternating measured rounds, medians), run
 * by hand, never by the test suite: single-threaded matrix-times-vector for dense BF16 and the sparse decode kernels
 * on one shape, reported as nanoseconds per 16 columns per row, so that kernels are compared on the same machine state.
 *
 * <pre>
 * mvn -q -B -o test-compile && java --add-modules jdk.incubator.vector -cp target/classes:target/test-classes \
 *     io.sparseserve.backend.cpu.SparseKernelBench [rows cols sparsity rounds]   (-Donly=prefix,... -Dreps=N)
 * </pre>
 *
 * <p>Measure one sparse format per JVM ({@code -Donly=nm24} or {@code -Donly=bitmask}): a kernel that sees both
 * {@code BitmaskMatrix} and {@code NmMatrix} gets slower code for both (2026-12-02, Zen 5 EPYC, [2048, 768]:
 * nm24-current 1.27-1.47 ns alone, 2.2 ns beside bitmask-current; 4.3-4.9 ns before the decode panel summed in scalar
 * code), which no single served model does. The matmul-* rows' call sites see all three matrix classes; there, with
 * both formats: batch 16 1.25x dense per token, 256 tokens 1.95-1.99x (before the tiles summed in scalar code: 0.2x).
 * nm24-planes-rows ({@link Nm24PlanesProbe}, 2:4 by mask blends) measured 1.12 ns against nm24-current's 1.47 and
 * dense's 0.71 in cache, and 1.37 against 2.25 and dense's 1.48 streaming from memory ([65536, 768]); the 4-row
 * interleaved form of the same arithmetic (nm24-planes) 4.8 ns.
 */
public final class SparseKernelBench {
    private SparseKernelBench() {}

    public static void main(String[] args) {
        int rows = args.length > 0 ? Integer.parseInt(args[0]) : 2048;
        int cols = args.length > 1 ? Integer.parseInt(args[1]) : 768;
        double sparsity = args.length > 2 ? Double.parseDouble(args[2]) : 0.5;
        int rounds = args.length > 3 ? Integer.parseInt(args[3]) : 9;
        SplittableRandom rnd = new SplittableRandom(7);
        float[] w = new float[rows * cols], w24 = new float[rows * cols];
        for (int i = 0; i < w.length; i++) w[i] = rnd.nextDouble() < sparsity ? 0f : (float) rnd.nextGaussian();
        for (int i = 0; i < w.length; i += 4) {
            int a = rnd.nextInt(4), b = (a + 1 + rnd.nextInt(3)) % 4;
            w24[i + a] = 1f + (float) rnd.nextGaussian();
            w24[i + b] = 1f + (float) rnd.nextGaussian();
        }
        float[] x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float) rnd.nextGaussian();
        DenseMatrix dense = denseBf16(w, rows, cols);
        // fromDense puts values and mask in one native block, as loading does (MaskedMatrix.block).
        BitmaskMatrix bm = BitmaskMatrix.fromDense(w, rows, cols, DType.BF16);
        NmMatrix nm = NmMatrix.fromDense(w24, rows, cols, 2, 4, DType.BF16);
        float[] xe = new float[cols / 2], xo = new float[cols / 2];
        Bf16Gemv.split(x, 0, cols, xe, xo);
        float[] y = new float[rows];
        Map<String, Runnable> variants = new LinkedHashMap<>();
        float[] sums = new float[4 * Lanes.N];
        int q = rows / 4;
        variants.put("dense-bf16", () -> { for (int r = 0; r < q; r++) Bf16Gemv.panel(dense.data(), cols, xe, xo, y, 0, null, r, q); });
        variants.put("bitmask-current", () -> { for (int r = 0; r < q; r++) { SparseGemv.pair(bm, xe, xo, y, 0, null, r, q, sums); SparseGemv.pair(bm, xe, xo, y, 0, null, r + 2 * q, q, sums); }; });
        Nm24PlanesProbe planes = new Nm24PlanesProbe(nm);
        float[] x4 = new float[cols];
        Nm24PlanesProbe.split4(x, cols, x4);
        float[] yp = new float[rows], yc = new float[rows];
        for (int r = 0; r < q; r++) { planes.panel(x4, yp, r, q); { SparseGemv.pair(nm, xe, xo, yc, 0, null, r, q, sums); SparseGemv.pair(nm, xe, xo, yc, 0, null, r + 2 * q, q, sums); }; }
        double err = 0;
        for (int r = 0; r < rows; r++) err = Math.max(err, Math.abs(yp[r] - yc[r]) / (1e-3 + Math.abs(yc[r])));
        System.out.println("nm24-planes max rel diff vs current: " + err);
        variants.put("bitmask-rows", () -> { for (int r = 0; r < rows; r++) SparseGemv.row(bm, xe, xo, y, 0, null, r); });
        variants.put("nm24-planes", () -> { for (int r = 0; r < q; r++) planes.panel(x4, y, r, q); });
        float[] x4t = new float[4 * cols], y4 = new float[4 * rows];
        for (int t = 0; t < 4; t++) { float[] part = new float[cols]; Nm24PlanesProbe.split4(x, cols, part); System.arraycopy(part, 0, x4t, t * cols, cols); }
        variants.put("nm24-planes-t4", () -> { for (int r = 0; r < rows; r++) planes.tile4(x4t, r, y4, rows); });
        variants.put("nm24-planes-rows", () -> { for (int r = 0; r < rows; r++) y[r] = planes.row(x4, r); });
        variants.put("nm24-current", () -> { for (int r = 0; r < q; r++) { SparseGemv.pair(nm, xe, xo, y, 0, null, r, q, sums); SparseGemv.pair(nm, xe, xo, y, 0, null, r + 2 * q, q, sums); }; });
        variants.put("bitmask-fused16", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.fused16(bm, x, y, r, q); });
        variants.put("bitmask-nospread", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.noSpread(bm, x, y, r, q); });
        variants.put("bitmask-step32", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.expandStep32(bm, x, y, r, q); });
        variants.put("widen-only(per16kept)", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.widenOnly(bm, x, y, r, q); });
        variants.put("bitmask-compressx", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.compressX(bm, x, y, r, q); });
        // The whole product through CpuMatmul on one thread, at batch sizes: decode (1), batched decode, prefill.
        CpuMatmul mm = new CpuMatmul(new CpuPool(1));
        for (int tokens : new int[] {1, 8, 16, 32, 64, 256}) {
            float[] xs = new float[tokens * cols], ys = new float[tokens * rows];
            for (int i = 0; i < xs.length; i++) xs[i] = x[i % cols] + i * 1e-3f;
            variants.put("matmul-dense-t" + tokens, () -> mm.matmul(dense, xs, 0, tokens, ys, 0, null));
            variants.put("matmul-bitmask-t" + tokens, () -> mm.matmul(bm, xs, 0, tokens, ys, 0, null));
            variants.put("matmul-nm24-t" + tokens, () -> mm.matmul(nm, xs, 0, tokens, ys, 0, null));
        }
        for (int tokens : new int[] {8, 16, 32, 64, 256}) {
            float[] xs = new float[tokens * cols], ys = new float[tokens * rows];
            for (int i = 0; i < xs.length; i++) xs[i] = x[i % cols] + i * 1e-3f;
            MemorySegment xt = Arena.global().allocate(4L * SparsePrompt.transposedSize(tokens, cols), 64);
            int cap = SparsePrompt.PANEL_ROWS * SparsePrompt.listCapacity(cols);
            int[] idx = new int[cap], starts = new int[SparsePrompt.PANEL_ROWS * (SparsePrompt.chunks(cols) + 1)];
            float[] val = new float[cap], st = new float[SparsePrompt.STATE];
            if (tokens == 256 || tokens == 8) variants.put("prompt-listonly-t" + tokens, () -> {
                for (int r = 0; r < rows; r++) SparsePrompt.list(bm, r, idx, val, 0, starts, 0);
            });
            SparsePrompt.transpose(xs, 0, null, tokens, cols, xt);
            SparsePrompt.rows(bm, xt, tokens, null, ys, 0, null, 0, rows, idx, val, starts, st);
            int wrong = 0;
            for (int t = 0; t < tokens; t++) for (int r = 0; r < rows; r++) {
                if (Float.floatToIntBits(ys[t * rows + r]) != Float.floatToIntBits(SparsePrompt.reference(bm, r, xs, t * cols, null))) wrong++;
            }
            System.out.println("prompt t" + tokens + " mismatches vs reference: " + wrong);
            variants.put("prompt-bitmask-t" + tokens, () -> {
                SparsePrompt.transpose(xs, 0, null, tokens, cols, xt);
                SparsePrompt.rows(bm, xt, tokens, null, ys, 0, null, 0, rows, idx, val, starts, st);
            });
        }
        variants.put("bitmask-expandfloats", () -> { for (int r = 0; r < q; r++) SparseKernelVariants.expandFloats(bm, x, y, r, q); });
        String only = System.getProperty("only");
        if (only != null) variants.keySet().removeIf(k -> !k.equals("dense-bf16") && java.util.Arrays.stream(only.split(",")).noneMatch(k::startsWith));
        long warmEnd = System.nanoTime() + 4_000_000_000L;
        while (System.nanoTime() < warmEnd) variants.values().forEach(Runnable::run);
        Map<String, double[]> times = new LinkedHashMap<>();
        variants.keySet().forEach(k -> times.put(k, new double[rounds]));
        int reps = Integer.getInteger("reps", 20);
        for (int round = 0; round < rounds; round++) {
            for (var e : variants.entrySet()) {
                // matmul-*-tN: N token rows per call; times are per token, and big products repeat less.
                int tokens = e.getKey().contains("-t") ? Integer.parseInt(e.getKey().substring(e.getKey().lastIndexOf("-t") + 2)) : 1;
                int n = Math.max(1, reps / Math.max(1, tokens / 8));
                long t0 = System.nanoTime();
                for (int i = 0; i < n; i++) e.getValue().run();
                times.get(e.getKey())[round] = (System.nanoTime() - t0) / (double) n / tokens / rows / (cols / 16.0);
            }
        }
        System.out.printf("shape [%d, %d], sparsity %.2f, %d rounds, one thread: ns per 16 columns per row per token (median)%n",
                rows, cols, sparsity, rounds);
        times.forEach((k, v) -> {
            String ref = k.startsWith("matmul-") || k.startsWith("prompt-") ? "matmul-dense" + k.substring(k.lastIndexOf("-t")) : "dense-bf16";
            double b = median(times.getOrDefault(ref, times.get("dense-bf16")));
            System.out.printf("%-24s %.3f ns  speed vs %s %.2fx%n", k, median(v), ref, b / median(v));
        });
    }

    /** Native memory, as weights mapped from a file or compressed at load are. */
    static MemorySegment offHeap(MemorySegment heap) {
        return Arena.global().allocate(heap.byteSize(), 64).copyFrom(heap);
    }

    static DenseMatrix denseBf16(float[] w, int rows, int cols) {
        MemorySegment seg = Arena.global().allocate(2L * rows * cols, 64);
        for (int i = 0; i < rows * cols; i++) DTypeConvert.setFloat(seg, DType.BF16, i, w[i]);
        return new DenseMatrix(seg, DType.BF16, rows, cols);
    }

    static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
