package io.sparseserve.backend.cuda;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.model.InvalidInputException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Which path multiplies each sparse matrix shape ({@code --sparse-kernel}), decided from timings taken once at load:
 * pure logic, tested without a GPU. A forced kind ({@code own}, {@code cusparse}, {@code dense}) is used for every
 * shape it can serve; {@code auto} keeps the fastest measured path per shape and phase. Paths within
 * {@link #TIE} of the fastest count as equally fast, and then the one holding fewer device bytes wins: the point of a
 * pruned model is to need less memory, so the dense expansion (or a 1.5x-dense CSR) must be clearly faster to be kept.
 * The paths {@code auto} rejects are freed by the runner.
 */
public final class SparsePathChoice {
    private SparsePathChoice() {}

    /** Within 3% of the fastest counts as a tie: about the run-to-run spread of a kernel timed a few times. */
    public static final double TIE = 1.03;

    /** Decode (1-16 token rows: GEMV-like, bandwidth-bound) and prefill (many rows: GEMM, compute-bound) choose apart. */
    public enum Phase { DECODE, PREFILL }

    /** A matrix shape as the kernels see it: its size, its storage format ("sparse-bitmask", "sparse-24-bitmask"). */
    public record Shape(int rows, int cols, String format) {}

    /**
     * One path measured on one shape and phase.
     *
     * @param seconds the median time of one product, or NaN when the path failed or cannot serve the shape
     * @param deviceBytes the bytes the matrix occupies on the device in this path's layout
     */
    public record Timing(SparseKernel kernel, double seconds, long deviceBytes) {
        public Timing {
            if (kernel == SparseKernel.AUTO) throw new IllegalArgumentException("auto is a choice, not a path");
        }

        boolean usable() {
            return Double.isFinite(seconds) && seconds > 0;
        }
    }

    /** The choice for one shape and phase, and why, for the log and {@code inspect --device}. */
    public record Choice(Shape shape, Phase phase, SparseKernel kernel, double seconds, String reason) {}

    /**
     * Picks the path for one shape and phase. {@code option} AUTO: the fastest usable timing, ties (within
     * {@link #TIE}) to fewer device bytes, then to the order own, dense, cusparse. A forced option: that path, or
     * {@link InvalidInputException} naming the option when it cannot serve the shape.
     */
    public static Choice choose(Shape shape, Phase phase, SparseKernel option, List<Timing> timings) {
        if (option != SparseKernel.AUTO) {
            for (Timing t : timings) {
                if (t.kernel() == option && t.usable()) return new Choice(shape, phase, option, t.seconds(), "forced by --sparse-kernel");
            }
            throw new InvalidInputException("--sparse-kernel " + option.label() + " cannot serve a " + shape.format() + " "
                    + shape.rows() + "x" + shape.cols() + " matrix (" + phase.name().toLowerCase(java.util.Locale.ROOT) + ")");
        }
        List<Timing> usable = new ArrayList<>();
        for (Timing t : timings) if (t.usable()) usable.add(t);
        if (usable.isEmpty()) {
            throw new IllegalStateException("no sparse path could serve a " + shape.format() + " " + shape.rows() + "x"
                    + shape.cols() + " matrix");
        }
        double best = Double.MAX_VALUE;
        for (Timing t : usable) best = Math.min(best, t.seconds());
        Timing pick = null;
        for (Timing t : usable) {
            if (t.seconds() > best * TIE) continue;
            if (pick == null || t.deviceBytes() < pick.deviceBytes()
                    || (t.deviceBytes() == pick.deviceBytes() && rank(t.kernel()) < rank(pick.kernel()))) {
                pick = t;
            }
        }
        String reason = pick.seconds() == best ? "fastest" : String.format(java.util.Locale.ROOT,
                "within %.0f%% of the fastest (%.3g s) with fewer device bytes", (TIE - 1) * 100, best);
        return new Choice(shape, phase, pick.kernel(), pick.seconds(), reason);
    }

    /** Choices for every measured shape and phase, in the order given. */
    public static List<Choice> chooseAll(SparseKernel option, Map<Shape, Map<Phase, List<Timing>>> timings) {
        List<Choice> out = new ArrayList<>();
        timings.forEach((shape, byPhase) -> byPhase.forEach((phase, list) -> out.add(choose(shape, phase, option, list))));
        return Collections.unmodifiableList(out);
    }

    /**
     * The paths a shape keeps on the device after the choices: the union over its phases (a shape may decode with
     * own kernels and prefill through a dense expansion). The runner frees the others.
     */
    public static Map<Shape, List<SparseKernel>> kept(List<Choice> choices) {
        Map<Shape, List<SparseKernel>> kept = new LinkedHashMap<>();
        for (Choice c : choices) {
            List<SparseKernel> k = kept.computeIfAbsent(c.shape(), s -> new ArrayList<>());
            if (!k.contains(c.kernel())) k.add(c.kernel());
        }
        return kept;
    }

    private static int rank(SparseKernel k) {
        return switch (k) {
            case OWN -> 0;
            case DENSE -> 1;
            case CUSPARSE -> 2;
            case AUTO -> 3;
        };
    }
}
