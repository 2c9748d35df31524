package io.sparseserve.backend.cuda;

import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.backend.SparseKernel;
import io.sparseserve.backend.cuda.SparsePathChoice.Phase;
import io.sparseserve.backend.cuda.SparsePathChoice.Shape;
import io.sparseserve.backend.cuda.SparsePathChoice.Timing;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The timing loop of {@code --sparse-kernel auto}, once at load (issue 8): for each sparse matrix shape, each path
 * (own kernels, cuSPARSE, dense expansion) is laid out on the device once, run a few times to warm up, then timed
 * {@code rounds} times per phase (decode: one token row; prefill: a long step), and freed before the next path, so
 * that at most one extra copy of one matrix is on the device at a time. A path that cannot be laid out or run (out of
 * memory, a library missing) counts as unusable (NaN) and the others still compete; a sticky device error is not a
 * path's failure and ends the load. {@link SparsePathChoice} then picks from the medians. The loop is separate from
 * the device ({@link Prober}) so that its structure is tested without a GPU.
 */
public final class SparsePathTimer {
    private static final Logger log = LoggerFactory.getLogger(SparsePathTimer.class);

    /** The paths {@code auto} chooses among, in the order they are tried. */
    public static final List<SparseKernel> PATHS = List.of(SparseKernel.OWN, SparseKernel.CUSPARSE, SparseKernel.DENSE);

    private SparsePathTimer() {}

    /** One path of one shape on the device: laid out by {@link Prober#prepare}, freed by {@link #close}. */
    public interface Probe extends AutoCloseable {
        /** Bytes the matrix holds on the device in this layout. */
        long deviceBytes();

        /** Seconds one product of {@code tokens} rows takes on the device. */
        double seconds(int tokens);

        @Override
        void close();
    }

    /** Lays out a matrix of {@code shape} for {@code kernel} (CudaPathProber on a GPU). */
    @FunctionalInterface
    public interface Prober {
        Probe prepare(Shape shape, SparseKernel kernel);
    }

    /**
     * Timings of every path for every shape and phase: the median of {@code rounds} runs after {@code warmup} runs.
     *
     * @param tokens the token rows each phase is timed at (a phase absent here is not timed)
     */
    public static Map<Shape, Map<Phase, List<Timing>>> measure(List<Shape> shapes, Map<Phase, Integer> tokens, Prober prober,
                                                               int warmup, int rounds) {
        if (rounds < 1 || warmup < 0) throw new IllegalArgumentException("rounds " + rounds + ", warmup " + warmup);
        Map<Shape, Map<Phase, List<Timing>>> out = new LinkedHashMap<>();
        for (Shape shape : shapes) {
            Map<Phase, List<Timing>> byPhase = new EnumMap<>(Phase.class);
            for (Phase phase : tokens.keySet()) byPhase.put(phase, new ArrayList<>());
            for (SparseKernel kernel : PATHS) {
                Map<Phase, Double> seconds = new EnumMap<>(Phase.class);
                long bytes = 0;
                try (Probe probe = prober.prepare(shape, kernel)) {
                    bytes = probe.deviceBytes();
                    for (var e : tokens.entrySet()) seconds.put(e.getKey(), median(probe, e.getValue(), warmup, rounds));
                } catch (RuntimeException e) {
                    if (e instanceof DeviceFailure || (e instanceof CudaException c && c.sticky())) throw e;
                    log.warn("sparse path {} cannot serve a {} {}x{} matrix: {}", kernel.label(), shape.format(), shape.rows(),
                            shape.cols(), e.toString());
                }
                for (Phase phase : tokens.keySet()) {
                    byPhase.get(phase).add(new Timing(kernel, seconds.getOrDefault(phase, Double.NaN), bytes));
                }
            }
            out.put(shape, byPhase);
        }
        return out;
    }

    private static double median(Probe probe, int tokens, int warmup, int rounds) {
        for (int i = 0; i < warmup; i++) probe.seconds(tokens);
        double[] t = new double[rounds];
        for (int i = 0; i < rounds; i++) t[i] = probe.seconds(tokens);
        Arrays.sort(t);
        return rounds % 2 == 1 ? t[rounds / 2] : (t[rounds / 2 - 1] + t[rounds / 2]) / 2;
    }

    /** One line per choice, for the log and {@code inspect --device}: "sparse-bitmask 4096x4096 decode: own 1.2e-05 s (fastest)". */
    public static List<String> describe(List<SparsePathChoice.Choice> choices) {
        List<String> lines = new ArrayList<>();
        for (SparsePathChoice.Choice c : choices) {
            lines.add(String.format(java.util.Locale.ROOT, "%s %dx%d %s: %s %.3g s (%s)", c.shape().format(), c.shape().rows(),
                    c.shape().cols(), c.phase().name().toLowerCase(java.util.Locale.ROOT), c.kernel().label(), c.seconds(), c.reason()));
        }
        return lines;
    }
}
