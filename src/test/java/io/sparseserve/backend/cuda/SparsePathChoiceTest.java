package io.sparseserve.backend.cuda;

import static io.sparseserve.backend.SparseKernel.AUTO;
import static io.sparseserve.backend.SparseKernel.CUSPARSE;
import static io.sparseserve.backend.SparseKernel.DENSE;
import static io.sparseserve.backend.SparseKernel.OWN;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.cuda.SparsePathChoice.Choice;
import io.sparseserve.backend.cuda.SparsePathChoice.Phase;
import io.sparseserve.backend.cuda.SparsePathChoice.Shape;
import io.sparseserve.backend.cuda.SparsePathChoice.Timing;
import io.sparseserve.model.InvalidInputException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The choice of sparse path per shape from measured timings ({@code --sparse-kernel}), without a GPU. */
class SparsePathChoiceTest {
    private static final Shape Q = new Shape(4096, 4096, "sparse-bitmask");
    private static final Shape UP = new Shape(11008, 4096, "sparse-bitmask");
    // Bytes of a 50% BF16 4096x4096 matrix: dense 32 MiB; bitmask ~0.56x; CSR ~1.5x.
    private static final long DENSE_BYTES = 32L << 20, OWN_BYTES = 18L << 20, CSR_BYTES = 48L << 20;

    private static List<Timing> timings(double own, double dense, double cusparse) {
        return List.of(new Timing(OWN, own, OWN_BYTES), new Timing(DENSE, dense, DENSE_BYTES), new Timing(CUSPARSE, cusparse, CSR_BYTES));
    }

    @Test
    void autoKeepsTheFastestPath() {
        assertEquals(OWN, SparsePathChoice.choose(Q, Phase.DECODE, AUTO, timings(1.0e-5, 1.6e-5, 4e-5)).kernel());
        Choice prefill = SparsePathChoice.choose(Q, Phase.PREFILL, AUTO, timings(3e-3, 1e-3, 9e-3));
        assertEquals(DENSE, prefill.kernel());
        assertEquals("fastest", prefill.reason());
        assertEquals(CUSPARSE, SparsePathChoice.choose(Q, Phase.DECODE, AUTO, timings(2e-5, 2e-5, 1e-5)).kernel());
    }

    @Test
    void nearTiesGoToTheFewerDeviceBytes() {
        // Dense 2% faster than own: a tie, and own holds 0.56x the bytes.
        Choice c = SparsePathChoice.choose(Q, Phase.PREFILL, AUTO, timings(1.02e-3, 1.0e-3, 5e-3));
        assertEquals(OWN, c.kernel());
        assertTrue(c.reason().startsWith("within 3% of the fastest"), c.reason());
        // 5% faster is not a tie.
        assertEquals(DENSE, SparsePathChoice.choose(Q, Phase.PREFILL, AUTO, timings(1.05e-3, 1.0e-3, 5e-3)).kernel());
    }

    @Test
    void failedMeasurementsAreSkippedAndAForcedPathIsUsedOrRefused() {
        assertEquals(DENSE, SparsePathChoice.choose(Q, Phase.DECODE, AUTO, timings(Double.NaN, 2e-5, 1e-4)).kernel());
        assertThrows(IllegalStateException.class,
                () -> SparsePathChoice.choose(Q, Phase.DECODE, AUTO, timings(Double.NaN, Double.NaN, Double.POSITIVE_INFINITY)));
        Choice forced = SparsePathChoice.choose(Q, Phase.DECODE, CUSPARSE, timings(1e-5, 2e-5, 9e-5));
        assertEquals(CUSPARSE, forced.kernel());
        assertEquals("forced by --sparse-kernel", forced.reason());
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> SparsePathChoice.choose(
                new Shape(4096, 4096, "sparse-24-bitmask"), Phase.PREFILL, CUSPARSE, timings(1e-3, 1e-3, Double.NaN)));
        assertEquals("--sparse-kernel cusparse cannot serve a sparse-24-bitmask 4096x4096 matrix (prefill)", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Timing(AUTO, 1, 1));
    }

    @Test
    void everyShapeAndPhaseIsChosenAndTheKeptPathsAreTheirUnion() {
        Map<Shape, Map<Phase, List<Timing>>> t = new LinkedHashMap<>();
        t.put(Q, new LinkedHashMap<>(Map.of(Phase.DECODE, timings(1e-5, 1.6e-5, 4e-5))));
        t.get(Q).put(Phase.PREFILL, timings(3e-3, 1e-3, 9e-3));
        t.put(UP, new LinkedHashMap<>(Map.of(Phase.DECODE, timings(2e-5, 3e-5, 8e-5))));
        t.get(UP).put(Phase.PREFILL, timings(2e-3, 2.01e-3, 9e-3));
        List<Choice> choices = SparsePathChoice.chooseAll(AUTO, t);
        assertEquals(4, choices.size());
        Map<Shape, List<io.sparseserve.backend.SparseKernel>> kept = SparsePathChoice.kept(choices);
        assertEquals(List.of(OWN, DENSE), kept.get(Q), "own for decode, a dense expansion for prefill");
        assertEquals(List.of(OWN), kept.get(UP), "cuSPARSE and dense freed");
    }
}
