package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.SparseKernel;
import io.sparseserve.backend.cuda.SparsePathChoice.Choice;
import io.sparseserve.backend.cuda.SparsePathChoice.Phase;
import io.sparseserve.backend.cuda.SparsePathChoice.Shape;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.NmMatrix;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import jcuda.driver.CUresult;
import org.junit.jupiter.api.Test;

/**
 * The load-time timing loop of {@code --sparse-kernel auto} ({@link SparsePathTimer}) with a scripted device: each
 * path of each shape laid out once and freed before the next, warm-up runs before the timed ones, the median kept, a
 * path that fails counted unusable while the others compete, a sticky device error not swallowed; then the choice
 * ({@link SparsePathChoice}) and the layouts it gives each weight ({@link SparsePaths}).
 */
class SparsePathTimerTest {
    private static final Shape QKV = new Shape(64, 128, "sparse-bitmask");
    private static final Shape DOWN = new Shape(64, 256, "sparse-24-bitmask");

    /** A device whose product times are given per (shape, path, tokens); records what happened, in order. */
    private static final class ScriptedDevice implements SparsePathTimer.Prober {
        final List<String> events = new ArrayList<>();
        final Map<String, double[]> times = new java.util.HashMap<>();
        final Map<String, RuntimeException> failures = new java.util.HashMap<>();
        int open;

        void times(Shape s, SparseKernel k, int tokens, double... seconds) {
            times.put(s.rows() + "x" + s.cols() + " " + k + " " + tokens, seconds);
        }

        @Override
        public SparsePathTimer.Probe prepare(Shape shape, SparseKernel kernel) {
            String key = shape.rows() + "x" + shape.cols() + " " + kernel;
            events.add("prepare " + key);
            RuntimeException f = failures.get(key);
            if (f != null) throw f;
            open++;
            assertEquals(1, open, "one extra layout on the device at a time");
            int[] calls = new int[1];
            return new SparsePathTimer.Probe() {
                @Override
                public long deviceBytes() {
                    return switch (kernel) {
                        case OWN -> 100;
                        case CUSPARSE -> 300;
                        default -> 200;
                    };
                }

                @Override
                public double seconds(int tokens) {
                    double[] t = times.get(key + " " + tokens);
                    events.add("run " + key + " " + tokens);
                    return t[Math.min(calls[0]++, t.length - 1)];
                }

                @Override
                public void close() {
                    events.add("free " + key);
                    open--;
                }
            };
        }
    }

    private static Map<Phase, Integer> phases() {
        Map<Phase, Integer> m = new EnumMap<>(Phase.class);
        m.put(Phase.DECODE, 1);
        m.put(Phase.PREFILL, 512);
        return m;
    }

    @Test
    void eachPathIsLaidOutOnceWarmedUpTimedAndFreed() {
        ScriptedDevice d = new ScriptedDevice();
        for (SparseKernel k : SparsePathTimer.PATHS) {
            d.times(QKV, k, 1, 9, 9, 3, 1, 2); // 2 warm-ups (9, 9), then 3, 1, 2: median 2
            d.times(QKV, k, 512, 5, 4, 3);
        }
        var timings = SparsePathTimer.measure(List.of(QKV), phases(), d, 2, 3);
        List<String> expected = new ArrayList<>();
        for (SparseKernel k : SparsePathTimer.PATHS) {
            String key = "64x128 " + k;
            expected.add("prepare " + key);
            for (int i = 0; i < 5; i++) expected.add("run " + key + " 1");
            for (int i = 0; i < 5; i++) expected.add("run " + key + " 512");
            expected.add("free " + key);
        }
        assertEquals(expected, d.events);
        for (Phase p : Phase.values()) {
            List<SparsePathChoice.Timing> t = timings.get(QKV).get(p);
            assertEquals(3, t.size());
            assertEquals(SparsePathTimer.PATHS, t.stream().map(SparsePathChoice.Timing::kernel).toList());
            for (SparsePathChoice.Timing x : t) assertEquals(p == Phase.DECODE ? 2.0 : 3.0, x.seconds());
        }
        assertEquals(300, timings.get(QKV).get(Phase.DECODE).get(1).deviceBytes());
    }

    @Test
    void theFastestPathPerShapeAndPhaseIsChosenAndAFailedPathDoesNotCompete() {
        ScriptedDevice d = new ScriptedDevice();
        d.times(QKV, SparseKernel.OWN, 1, 10e-6);
        d.times(QKV, SparseKernel.OWN, 512, 900e-6);
        d.times(QKV, SparseKernel.CUSPARSE, 1, 40e-6);
        d.times(QKV, SparseKernel.CUSPARSE, 512, 2000e-6);
        d.times(QKV, SparseKernel.DENSE, 1, 18e-6);
        d.times(QKV, SparseKernel.DENSE, 512, 500e-6);
        d.failures.put("64x256 CUSPARSE", new CudaException("cusparseCreate", 1, "CUSPARSE_STATUS_NOT_INITIALIZED", false));
        d.times(DOWN, SparseKernel.OWN, 1, 30e-6);
        d.times(DOWN, SparseKernel.OWN, 512, 1000e-6);
        d.times(DOWN, SparseKernel.DENSE, 1, 30.5e-6); // within 3%: fewer bytes (own) wins
        d.times(DOWN, SparseKernel.DENSE, 512, 1010e-6);
        var timings = SparsePathTimer.measure(List.of(QKV, DOWN), phases(), d, 0, 1);
        assertTrue(Double.isNaN(timings.get(DOWN).get(Phase.DECODE).get(1).seconds()), "cuSPARSE failed: unusable");
        List<Choice> choices = SparsePathChoice.chooseAll(SparseKernel.AUTO, timings);
        assertEquals(4, choices.size());
        SparsePaths paths = SparsePaths.chosen(choices);
        BitmaskMatrix qkv = bitmask(64, 128);
        assertSame(SparseKernel.OWN, paths.kernel(qkv, Phase.DECODE));
        assertSame(SparseKernel.DENSE, paths.kernel(qkv, Phase.PREFILL));
        NmMatrix down = nm24(64, 256);
        assertSame(SparseKernel.OWN, paths.kernel(down, Phase.DECODE));
        assertSame(SparseKernel.OWN, paths.kernel(down, Phase.PREFILL));
        assertEquals("sparse-bitmask 64x128 prefill: dense 0.000500 s (fastest)", SparsePathTimer.describe(choices).get(1));
        assertTrue(SparsePathTimer.describe(choices).get(2).startsWith("sparse-24-bitmask 64x256 decode: own 3.00e-05 s (fastest)"),
                SparsePathTimer.describe(choices).get(2));
    }

    @Test
    void aStickyErrorWhileTimingEndsTheLoad() {
        ScriptedDevice d = new ScriptedDevice();
        d.failures.put("64x128 OWN", new CudaException("cuLaunchKernel", CUresult.CUDA_ERROR_ILLEGAL_ADDRESS,
                "CUDA_ERROR_ILLEGAL_ADDRESS", true));
        CudaException e = assertThrows(CudaException.class, () -> SparsePathTimer.measure(List.of(QKV), phases(), d, 0, 1));
        assertTrue(e.sticky());
    }

    @Test
    void forcedPathsAndUntimedShapes() {
        BitmaskMatrix b = bitmask(64, 64);
        assertSame(SparseKernel.CUSPARSE, SparsePaths.of(SparseKernel.CUSPARSE).kernel(b, Phase.DECODE));
        assertSame(SparseKernel.OWN, SparsePaths.of(SparseKernel.AUTO).kernel(b, Phase.PREFILL), "auto before timing: own");
        assertEquals(new Shape(64, 64, "sparse-bitmask"), SparsePaths.shapeOf(b));
        assertEquals(null, SparsePaths.shapeOf(DenseMatrix.fromFloats(new float[64 * 64], 64, 64, DType.BF16)));
        // only decode timed (steps of at most 16 rows): one layout for both
        SparsePaths decodeOnly = SparsePaths.chosen(List.of(new Choice(SparsePaths.shapeOf(b), Phase.DECODE, SparseKernel.DENSE, 1, "fastest")));
        assertSame(SparseKernel.DENSE, decodeOnly.kernel(b, Phase.PREFILL));
    }

    private static BitmaskMatrix bitmask(int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i += 2) w[i] = 1f + i % 7;
        return BitmaskMatrix.fromDense(w, rows, cols, DType.BF16);
    }

    private static NmMatrix nm24(int rows, int cols) {
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i += 4) {
            w[i] = 1f;
            w[i + 2] = 2f;
        }
        return NmMatrix.fromDense(w, rows, cols, 2, 4, DType.BF16);
    }
}
