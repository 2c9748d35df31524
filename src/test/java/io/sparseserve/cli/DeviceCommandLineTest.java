package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.TestData;
import io.sparseserve.backend.cuda.CudaDriverProbe;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * {@code --device} and the GPU options on serve, generate, eval, bench and inspect: bad values and a missing GPU exit 2
 * with one line naming the option and what is missing, before any model is loaded; {@code cpu} runs.
 */
class DeviceCommandLineTest {
    private static final String MODEL = TestData.bundledModel().toString();

    /** Each subcommand with the options it needs besides the device ones. */
    private static List<String[]> subcommands() {
        return List.of(
                new String[] {"serve", "--model", MODEL, "--port", "0"},
                new String[] {"generate", "--model", MODEL, "--prompt", "x", "--max-new-tokens", "2"},
                new String[] {"eval", "--model", MODEL, "--text", TestData.testText60k().toString(), "--max-windows", "1"},
                new String[] {"bench", "--model", MODEL, "--rounds", "1"},
                new String[] {"inspect", "--model", MODEL});
    }

    private static String[] with(String[] base, String... more) {
        List<String> all = new ArrayList<>(List.of(base));
        all.addAll(List.of(more));
        return all.toArray(String[]::new);
    }

    private static void assertOneLine(CliRunner r, String args, String expectedPrefix) {
        assertEquals(2, r.exitCode(), args + " -> " + r.err());
        assertEquals(1, r.err().strip().lines().count(), "one line: " + r.err());
        assertTrue(r.err().startsWith("error: " + expectedPrefix), args + " -> " + r.err());
    }

    @Test
    void badDeviceOptionsExitTwoWithOneLineNamingTheOption() {
        String[][] bad = {
            {"--device", "gpu"}, {"--device", "cuda:x"}, {"--device", "cuda:0,"},
            {"--kv-dtype", "int8"},
            {"--gpu-memory-utilization", "1.5"}, {"--gpu-memory-utilization", "0"},
            {"--sparse-kernel", "csr"},
            {"--layer-split", "3,x"}, {"--layer-split", "0,6"}, {"--layer-split", "6"},
            {"--device", "cuda:0,0", "--layer-split", "2,2,2"},
        };
        String[] prefixes = {"--device", "--device", "--device", "--kv-dtype",
            "--gpu-memory-utilization", "--gpu-memory-utilization", "--sparse-kernel",
            "--layer-split must be layer counts >= 1", "--layer-split must be layer counts >= 1",
            "--layer-split needs several GPUs", "--layer-split 2,2,2 has 3 layer counts for --device cuda:0,0 (2 devices)"};
        for (String[] sub : subcommands()) {
            for (int i = 0; i < bad.length; i++) {
                String[] args = with(sub, bad[i]);
                assertOneLine(CliRunner.run(args), String.join(" ", args), prefixes[i]);
            }
        }
    }

    @Test
    void aLayerSplitWithoutADriverNamesWhatIsMissing() {
        CudaDriverProbe.Result probe = CudaDriverProbe.probe();
        for (String[] sub : subcommands()) {
            String[] args = with(sub, "--device", "cuda:0,0", "--layer-split", "3,3");
            CliRunner r = CliRunner.run(args);
            assertOneLine(r, String.join(" ", args), "--device cuda:0,0: ");
            if (!probe.available()) assertEquals("error: --device cuda:0,0: " + probe.problem(), r.err().strip());
        }
    }

    @Test
    void cudaWithoutADriverNamesWhatIsMissing() {
        CudaDriverProbe.Result probe = CudaDriverProbe.probe();
        for (String[] sub : subcommands()) {
            for (String device : new String[] {"cuda", "cuda:1"}) {
                String[] args = with(sub, "--device", device);
                CliRunner r = CliRunner.run(args);
                String canonical = device.equals("cuda") ? "cuda:0" : device;
                assertOneLine(r, String.join(" ", args), "--device " + canonical + ": ");
                if (!probe.available()) {
                    // Here (and in CI): no driver. The line is the probe's finding, e.g. "no CUDA driver: libcuda.so.1:
                    // cannot open shared object file: No such file or directory (JCuda's driver library needs it)".
                    assertEquals("error: --device " + canonical + ": " + probe.problem(), r.err().strip());
                }
            }
        }
        if (!probe.available() && probe.problem().startsWith("no CUDA driver")) {
            assertTrue(probe.problem().contains("libcuda.so"), probe.problem());
        }
    }

    /** The real command in its own JVM: stderr is the one line and nothing else (no JCuda report, no stack trace). */
    @Test
    void serveWithCudaInItsOwnJvmPrintsOnlyTheOneLine() throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-cp", System.getProperty("java.class.path"), "io.sparseserve.cli.Main", "serve", "--model", MODEL,
                "--port", "0", "--device", "cuda").redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        String err;
        try {
            err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "serve --device cuda did not exit");
        } finally {
            p.destroyForcibly();
        }
        // The JVM's own note about the incubator module is not ours (the launcher drops it).
        List<String> lines = err.lines().filter(l -> !l.startsWith("WARNING: Using incubator modules")).toList();
        assertEquals(2, p.exitValue(), err);
        assertEquals(1, lines.size(), err);
        assertTrue(lines.getFirst().startsWith("error: --device cuda:0: "), err);
    }

    @Test
    void cpuRunsWithExplicitOptionsAndInspectDescribesTheRunner() throws Exception {
        CliRunner g = CliRunner.run("generate", "--model", MODEL, "--prompt", "The kernel", "--max-new-tokens", "3",
                "--device", "cpu", "--kv-dtype", "f32", "--gpu-memory-utilization", "0.5", "--sparse-kernel", "own", "--json");
        assertEquals(0, g.exitCode(), g.err());
        assertEquals(3, new ObjectMapper().readTree(g.out()).get("token_ids").size());
        CliRunner i = CliRunner.run("inspect", "--model", MODEL, "--device", "cpu", "--json");
        assertEquals(0, i.exitCode(), i.err());
        JsonNode runner = new ObjectMapper().readTree(i.out()).get("runner");
        assertEquals("cpu", runner.get("device").asText());
        assertEquals("f32", runner.get("kv_dtype").asText());
        assertEquals(1, runner.get("kv_blocks").asInt());
        assertTrue(runner.get("memory_weights_bytes").asLong() > 0);
        // bf16 KV on the cpu: the same blocks in half the bytes.
        CliRunner b = CliRunner.run("inspect", "--model", MODEL, "--device", "cpu", "--kv-dtype", "bf16", "--json");
        assertEquals(0, b.exitCode(), b.err());
        JsonNode bf16 = new ObjectMapper().readTree(b.out()).get("runner");
        assertEquals("bf16", bf16.get("kv_dtype").asText());
        assertEquals(runner.get("memory_kv_bytes").asLong(), 2 * bf16.get("memory_kv_bytes").asLong());
    }
}
