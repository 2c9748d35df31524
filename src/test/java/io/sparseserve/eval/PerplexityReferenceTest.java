package io.sparseserve.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.TestData;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Evaluation of both fixtures against reference.json, as stored and re-saved in the other dtypes and as shards.
 * Widening (F16 to F32) and sharding keep every weight, so the reference must hold exactly. Narrowing (F32 to F16 or
 * BF16, F16 to BF16) rounds the weights: there the result must equal the same rounded weights stored as F32 (so each
 * dtype's kernels are exact), and stay near the reference.
 */
class PerplexityReferenceTest {
    @TempDir Path tmp;

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT, TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void storedFixtureReproducesReference(String fixture) {
        JsonNode ref = TestData.reference(fixture);
        Path dir = TestData.fixture(fixture);
        assertEquals(ref.path("eval").path("perplexity").asDouble(), perplexity(dir, ref), 1e-4 * ref.path("eval").path("perplexity").asDouble());
    }

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA, TestData.TINY_OPT, TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void firstWindowIdsMatch(String fixture) throws IOException {
        JsonNode ref = TestData.reference(fixture);
        try (Tokenizer tok = Tokenizer.load(TestData.fixture(fixture).resolve("tokenizer.json"))) {
            int[] ids = tok.encode(Files.readString(TestData.testText60k()));
            int[] expected = TestData.ints(ref.path("eval").path("first_window_ids"));
            assertArrayEquals(expected, Arrays.copyOf(ids, expected.length));
        }
    }

    @Test
    void losslessResavesReproduceReferenceExactly() throws IOException {
        check(TestData.TINY_LLAMA, DType.F32, true);
        check(TestData.TINY_OPT, DType.F32, false);
        check(TestData.TINY_OPT, DType.F32, true);
        check(TestData.TINY_OPT, DType.F16, true);
    }

    private void check(String fixture, DType dtype, boolean sharded) throws IOException {
        JsonNode ref = TestData.reference(fixture);
        Path dir = FixtureResave.resave(TestData.fixture(fixture), tmp.resolve(fixture + "-" + dtype + "-" + sharded), dtype, sharded);
        double want = ref.path("eval").path("perplexity").asDouble();
        assertEquals(want, perplexity(dir, ref), 1e-4 * want, fixture + " as " + dtype + (sharded ? " shards" : ""));
        io.sparseserve.engine.ReferenceLogitsTestAccess.checkTop5(dir, ref);
        io.sparseserve.engine.ReferenceLogitsTestAccess.checkGreedy(dir, ref);
    }

    @Test
    void narrowedResavesComputeExactlyOnTheirRoundedWeights() throws IOException {
        String[][] cases = {{TestData.TINY_LLAMA, "F16"}, {TestData.TINY_LLAMA, "BF16"}, {TestData.TINY_OPT, "BF16"}};
        for (String[] c : cases) {
            JsonNode ref = TestData.reference(c[0]);
            DType dtype = DType.valueOf(c[1]);
            Path narrow = FixtureResave.resave(TestData.fixture(c[0]), tmp.resolve(c[0] + "-" + dtype), dtype, false);
            Path narrowSharded = FixtureResave.resave(TestData.fixture(c[0]), tmp.resolve(c[0] + "-" + dtype + "-s"), dtype, true);
            Path widened = FixtureResave.resave(narrow, tmp.resolve(c[0] + "-" + dtype + "-f32"), DType.F32, false);
            double ppl = perplexity(narrow, ref);
            assertEquals(perplexity(widened, ref), ppl, 1e-5 * ppl, c[0] + " " + dtype + " vs its F32 widening");
            // Bit-exact across runs, whatever the JIT has compiled in between (the kernels' arithmetic is tier-free).
            assertEquals(ppl, perplexity(narrowSharded, ref), 0.0, c[0] + " " + dtype + " sharded");
            double want = ref.path("eval").path("perplexity").asDouble();
            assertEquals(want, ppl, 0.02 * want, c[0] + " " + dtype + " stays near the reference");
        }
    }

    static double perplexity(Path dir, JsonNode ref) {
        int seqLen = ref.path("eval").path("seq_len").asInt();
        try (Model m = Model.load(dir); Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            int[] ids = tok.encode(Files.readString(TestData.testText60k()));
            int windows = ref.path("eval").path("windows").asInt();
            Perplexity.Result r = Perplexity.evaluate(m, ModelRunners.cpu(), ids, seqLen, windows, null);
            assertEquals(windows, r.windows());
            return r.perplexity();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
