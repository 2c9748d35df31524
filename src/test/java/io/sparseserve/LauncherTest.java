package io.sparseserve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bin/sparse-serve's Java heap bound, run for real with a stand-in {@code java} that prints the flags it was given:
 * 1 GiB by default (serving keeps only request state on the heap), half the memory for prune and synth,
 * SPARSE_SERVE_HEAP as a size or a percentage, a heap flag in JAVA_OPTS winning, a bad value one line and exit 2.
 */
class LauncherTest {
    @TempDir Path tmp;
    private Path launcher;

    @BeforeEach
    void setUp() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/bin/bash")), "no bash here");
        Files.createDirectories(tmp.resolve("bin"));
        Files.createDirectories(tmp.resolve("target"));
        Files.createDirectories(tmp.resolve("jdk/bin"));
        launcher = Files.copy(Path.of("bin/sparse-serve"), tmp.resolve("bin/sparse-serve"));
        Files.writeString(tmp.resolve("target/sparse-serve.jar"), "");
        Path java = Files.writeString(tmp.resolve("jdk/bin/java"), """
                #!/bin/sh
                if [ "$1" = "-XshowSettings:properties" ]; then echo "    java.specification.version = 25" >&2; exit 0; fi
                printf '%s\\n' "$@"
                """);
        Files.setPosixFilePermissions(java, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    private record Run(int code, List<String> args, String err) {}

    private Run run(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>(List.of("/bin/bash", launcher.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().remove("JAVA_OPTS");
        pb.environment().remove("SPARSE_SERVE_HEAP");
        pb.environment().put("JAVA_HOME", tmp.resolve("jdk").toString());
        pb.environment().putAll(env);
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "launcher did not finish");
        String out = new String(p.getInputStream().readAllBytes()), err = new String(p.getErrorStream().readAllBytes());
        return new Run(p.exitValue(), out.lines().toList(), err);
    }

    @Test
    void serveGetsABoundedHeapByDefault() throws Exception {
        Run r = run(Map.of(), "serve", "--port", "0");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.args().contains("-Xmx1g"), r.args().toString());
        assertEquals(List.of("-jar", tmp.resolve("target/sparse-serve.jar").toString(), "serve", "--port", "0"),
                r.args().subList(r.args().size() - 5, r.args().size()));
    }

    @Test
    void pruneAndSynthGetHalfTheMemory() throws Exception {
        for (String sub : new String[] {"prune", "synth"}) {
            Run r = run(Map.of(), sub, "--help");
            assertTrue(r.args().contains("-XX:MaxRAMPercentage=50"), sub + ": " + r.args());
            assertFalse(r.args().stream().anyMatch(a -> a.startsWith("-Xmx")), sub + ": " + r.args());
        }
    }

    @Test
    void theEnvironmentAndJavaOptsChooseTheHeap() throws Exception {
        assertTrue(run(Map.of("SPARSE_SERVE_HEAP", "512m"), "serve").args().contains("-Xmx512m"));
        assertTrue(run(Map.of("SPARSE_SERVE_HEAP", "30%"), "serve").args().contains("-XX:MaxRAMPercentage=30"));
        Run opts = run(Map.of("JAVA_OPTS", "-Xmx3g"), "serve");
        assertEquals(List.of("-Xmx3g"), opts.args().stream().filter(a -> a.startsWith("-Xmx")).toList());
        Run pct = run(Map.of("JAVA_OPTS", "-XX:MaxRAMPercentage=40"), "serve");
        assertFalse(pct.args().stream().anyMatch(a -> a.startsWith("-Xmx")), pct.args().toString());
    }

    @Test
    void aBadHeapValueIsOneLineAndExitTwo() throws Exception {
        Run r = run(Map.of("SPARSE_SERVE_HEAP", "lots"), "serve");
        assertEquals(2, r.code());
        assertEquals(1, r.err().strip().lines().count(), r.err());
        assertTrue(r.err().startsWith("error: SPARSE_SERVE_HEAP must be"), r.err());
    }
}
