package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.model.Model;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;

/**
 * {@link EngineTest}'s scheduler tests on the bundled model pruned to 50% (compressed weights): prompt tokens run on
 * the zero-skipping prompt kernel and generated ones on the decode kernels, so the engine's chunked prefills,
 * batches and recomputations after a preemption must still give each request exactly what the generator gives it
 * alone.
 */
class SparseEngineTest extends EngineTest {
    private static Path dir;

    @BeforeAll
    static void loadPruned() throws Exception {
        model.close();
        dir = Files.createTempDirectory("sparse-engine");
        Path pruned = dir.resolve("m");
        BatchingInvarianceTest.prune(pruned, "--sparsity", "0.5", "--format", "sparse");
        model = Model.load(pruned);
        assertEquals("sparse-bitmask", model.weights().layers().get(0).q().weight().format());
    }

    @AfterAll
    static void deletePruned() throws Exception {
        try (var files = Files.walk(dir)) {
            files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        }
    }
}
