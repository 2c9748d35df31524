package io.sparseserve.backend.cuda;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.util.List;
import java.util.Map;

/**
 * The layout each sparse weight is uploaded in: one path for every matrix ({@code --sparse-kernel own|cusparse|dense}),
 * or per shape and phase the paths {@code --sparse-kernel auto} timed fastest ({@link SparsePathChoice}); a shape
 * that was not timed (or auto before any timing) takes our own kernels. Dense weights are always dense.
 */
public record SparsePaths(SparseKernel forced, Map<SparsePathChoice.Shape, Map<SparsePathChoice.Phase, SparseKernel>> chosen) {

    public static SparsePaths of(SparseKernel kernel) {
        return new SparsePaths(kernel, Map.of());
    }

    /** The auto choices, shape by shape. */
    public static SparsePaths chosen(List<SparsePathChoice.Choice> choices) {
        Map<SparsePathChoice.Shape, Map<SparsePathChoice.Phase, SparseKernel>> m = new java.util.LinkedHashMap<>();
        for (SparsePathChoice.Choice c : choices) {
            m.computeIfAbsent(c.shape(), s -> new java.util.EnumMap<>(SparsePathChoice.Phase.class)).put(c.phase(), c.kernel());
        }
        return new SparsePaths(SparseKernel.AUTO, m);
    }

    /** The shape {@code m} is timed and chosen by, or null for a matrix that is not sparse (or an N:M without kernels). */
    public static SparsePathChoice.Shape shapeOf(WeightMatrix m) {
        boolean timed = m instanceof BitmaskMatrix || (m instanceof NmMatrix n && n.n() == 2 && n.m() == 4);
        return timed ? new SparsePathChoice.Shape(m.rows(), m.cols(), m.format()) : null;
    }

    /** The path of {@code m} in {@code phase}. */
    public SparseKernel kernel(WeightMatrix m, SparsePathChoice.Phase phase) {
        if (forced != SparseKernel.AUTO) return forced;
        SparsePathChoice.Shape s = shapeOf(m);
        Map<SparsePathChoice.Phase, SparseKernel> byPhase = s == null ? null : chosen.get(s);
        SparseKernel k = byPhase == null ? null : byPhase.get(phase);
        if (k == null && byPhase != null) k = byPhase.get(SparsePathChoice.Phase.DECODE); // no prefill timed: one layout
        return k == null ? SparseKernel.OWN : k;
    }
}
