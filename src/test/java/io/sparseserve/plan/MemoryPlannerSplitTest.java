package io.sparseserve.plan;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.model.InvalidInputException;
import io.sparseserve.tensor.DType;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * {@link MemoryPlanner#split}: the layer ranges over exactly N GPUs that a server given N devices uses. Checked against
 * every contiguous split (brute force): none has a smaller largest share; every GPU holds a layer; GPU 0 holds the
 * embeddings and the last GPU the head.
 */
class MemoryPlannerSplitTest {
    private static final Path CONFIGS = Path.of("src", "test", "resources", "plan");

    private static MemoryPlanner planner(String name, int context) {
        return new MemoryPlanner(ModelShape.read(CONFIGS.resolve(name).resolve("config.json")), DType.F16, DType.F16, 80L << 30,
                0.9, 2L << 30, context, 1, 16);
    }

    private static long share(MemoryPlan p, int gpu, long kvPerLayer, int gpus, boolean tied, long headMatrix, int first, int end) {
        long s = (long) (end - first) * (p.layerBytes() + kvPerLayer);
        if (gpu == 0) s += p.embeddingBytes();
        if (gpu == gpus - 1) s += p.headBytes() - (gpu == 0 && tied ? headMatrix : 0);
        return s;
    }

    @ParameterizedTest
    @CsvSource({"llama-3.1-8b, 2, 2048", "llama-3.1-8b, 3, 8192", "llama-3.1-8b, 4, 128", "opt-66b, 3, 2048", "opt-175b, 5, 2048",
        "llama-2-70b, 2, 4096"})
    void noContiguousSplitHasASmallerLargestShare(String name, int gpus, int context) {
        MemoryPlanner planner = planner(name, context);
        ModelShape shape = planner.shape();
        for (WeightFormat format : List.of(new WeightFormat.Dense(), new WeightFormat.Bitmask(0.5), new WeightFormat.Nm(2, 4))) {
            MemoryPlan p = planner.split(format, gpus);
            assertEquals(gpus, p.gpus());
            long kvPerLayer = planner.kvBytesPerTokenPerLayer() * planner.kvTokensPerSequence();
            long headMatrix = shape.headElements() * 2;
            long worst = 0;
            for (int g = 0; g < gpus; g++) {
                MemoryPlan.Stage st = p.stages().get(g);
                assertTrue(st.layers() >= 1, "GPU " + g + " holds a layer");
                assertEquals(g == 0 ? 0 : p.stages().get(g - 1).endLayer(), st.firstLayer());
                assertEquals(g == 0, st.embeddings());
                assertEquals(g == gpus - 1, st.head());
                long s = share(p, g, kvPerLayer, gpus, shape.tieEmbeddings(), headMatrix, st.firstLayer(), st.endLayer());
                assertEquals(s, st.weightBytes() + st.kvBytes(), "the stage's bytes are its share");
                worst = Math.max(worst, s);
            }
            long best = bruteForce(p, kvPerLayer, gpus, shape.layers(), shape.tieEmbeddings(), headMatrix, new int[gpus + 1], 1);
            assertEquals(best, worst, name + " " + format.label() + " over " + gpus);
        }
    }

    /** The smallest largest share over every contiguous split with at least one layer per GPU. */
    private static long bruteForce(MemoryPlan p, long kv, int gpus, int layers, boolean tied, long headMatrix, int[] cuts, int g) {
        if (g == gpus) {
            cuts[gpus] = layers;
            long worst = 0;
            for (int i = 0; i < gpus; i++) worst = Math.max(worst, share(p, i, kv, gpus, tied, headMatrix, cuts[i], cuts[i + 1]));
            return worst;
        }
        long best = Long.MAX_VALUE;
        for (int c = cuts[g - 1] + 1; c <= layers - (gpus - g); c++) {
            cuts[g] = c;
            best = Math.min(best, bruteForce(p, kv, gpus, layers, tied, headMatrix, cuts, g + 1));
        }
        return best;
    }

    @ParameterizedTest
    @CsvSource({"opt-175b, 2048", "llama-2-70b, 4096"})
    void overTheGpusThePlanNeedsTheLargestShareIsNoLargerThanTheGreedyFills(String name, int context) {
        MemoryPlanner planner = planner(name, context);
        for (WeightFormat format : List.of(new WeightFormat.Dense(), new WeightFormat.Bitmask(0.5))) {
            MemoryPlan greedy = planner.plan(format);
            MemoryPlan split = planner.split(format, greedy.gpus());
            long g = greedy.stages().stream().mapToLong(s -> s.weightBytes() + s.kvBytes()).max().orElseThrow();
            long s = split.stages().stream().mapToLong(st -> st.weightBytes() + st.kvBytes()).max().orElseThrow();
            assertTrue(s <= g, s + " > " + g);
            assertTrue(split.stages().stream().allMatch(st -> st.freeBytes() >= 0), "it fits where the greedy plan fits");
            assertEquals(greedy.weightBytes(), split.weightBytes());
        }
    }

    @ParameterizedTest
    @CsvSource({"llama-3.1-8b, 33", "llama-3.1-8b, 0"})
    void moreGpusThanLayersOrNoneAreRefused(String name, int gpus) {
        InvalidInputException e = assertThrows(InvalidInputException.class, () -> planner(name, 2048).split(new WeightFormat.Dense(), gpus));
        assertTrue(e.getMessage().startsWith("--gpus " + gpus), e.getMessage());
    }
}
