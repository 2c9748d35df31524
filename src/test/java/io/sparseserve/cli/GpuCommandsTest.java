package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import io.sparseserve.backend.cuda.CudaDriverProbe;
import org.junit.jupiter.api.Test;

/**
 * gpu-compare and gpu-calibrate without a GPU: the comparison itself runs CPU against CPU (the same numbers up to float
 * rounding, every greedy id equal), and asking for a GPU where there is none is one line and exit 2.
 */
class GpuCommandsTest {

    @Test
    void compareCpuWithItselfPassesWithZeroError() throws Exception {
        for (String fixture : new String[] {TestData.TINY_LLAMA, TestData.TINY_OPT}) {
            CliRunner r = CliRunner.run("gpu-compare", "--model", TestData.fixture(fixture).toString(), "--device", "cpu",
                    "--new-tokens", "8", "--json");
            assertEquals(0, r.exitCode(), r.err());
            JsonNode j = new ObjectMapper().readTree(r.out());
            assertTrue(j.get("pass").asBoolean(), r.out());
            // Not exactly 0: the CPU runner's rows differ by float rounding (~3e-7 of the largest logit) between its
            // LAST_LOGITS and LAST_ARGMAX steps' histories; far inside the 1e-2 tolerance.
            assertTrue(j.get("max_row_error_over_max_logit").asDouble() < 1e-5, r.out());
            assertEquals(TestData.reference(fixture).path("greedy").path("prompt_ids").size() + 4, j.get("logit_rows").asInt(), r.out());
            assertEquals(7, j.get("greedy_steps_checked").asInt() + j.get("greedy_near_ties_skipped").asInt(), r.out());
            assertEquals(0, j.get("greedy_mismatches").asInt(), r.out());
        }
    }

    /**
     * The split check of native/gpu-check.sh ({@code --device cuda:0,0 --reference cuda:0 --same-ids}) run CPU against
     * CPU: each runner generates 32 ids on its own and the reference's greedy ids (reference.json) come out of both.
     */
    @Test
    void sameIdsLetsEachRunnerGenerateOnItsOwn() throws Exception {
        CliRunner r = CliRunner.run("gpu-compare", "--model", TestData.fixture(TestData.TINY_LLAMA).toString(), "--device", "cpu",
                "--reference", "cpu", "--same-ids", "--new-tokens", "32", "--json");
        assertEquals(0, r.exitCode(), r.err());
        JsonNode j = new ObjectMapper().readTree(r.out());
        assertTrue(j.get("same_ids").asBoolean(), r.out());
        assertTrue(j.get("pass").asBoolean(), r.out());
        assertEquals(32, j.get("device_ids").size());
        assertEquals(j.get("reference_ids"), j.get("device_ids"));
        int[] expected = TestData.ints(TestData.reference(TestData.TINY_LLAMA).path("greedy").path("new_ids"));
        for (int i = 0; i < Math.min(expected.length, 32); i++) assertEquals(expected[i], j.get("device_ids").get(i).asInt(), "id " + i);
        if (CudaDriverProbe.probe().available()) return; // with a GPU the split runs (native/gpu-check.sh checks it)
        CliRunner split = CliRunner.run("gpu-compare", "--model", TestData.fixture(TestData.TINY_LLAMA).toString(), "--device",
                "cuda:0,0", "--reference", "cuda:0", "--same-ids", "--json");
        assertEquals(2, split.exitCode(), split.err());
        assertTrue(split.err().startsWith("error: --device cuda:0"), split.err());
    }

    @Test
    void withoutGpuTheCommandsSayWhatIsMissing() {
        if (CudaDriverProbe.probe().available()) {
            System.out.println("skipped: a CUDA driver is present here");
            return;
        }
        for (String[] args : new String[][] {
                {"gpu-compare", "--model", TestData.fixture(TestData.TINY_LLAMA).toString(), "--device", "cuda:0"},
                {"gpu-calibrate", "--device", "cuda:0", "--json"}}) {
            CliRunner r = CliRunner.run(args);
            assertEquals(2, r.exitCode(), args[0] + ": " + r.err());
            assertTrue(r.err().startsWith("error: --device cuda"), r.err());
            assertEquals(1, r.err().lines().count(), r.err());
            assertFalse(r.err().contains("Exception"), r.err());
        }
        CliRunner bad = CliRunner.run("gpu-calibrate", "--device", "gpu0");
        assertEquals(2, bad.exitCode());
        assertTrue(bad.err().contains("--device must be cuda or cuda:N"), bad.err());
    }
}
