package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Runs every CUDA kernel of native/*.cu without a GPU: g++ compiles them against native/emu/cuda_emu.h (the CUDA
 * execution model on CPU fibers: blocks, warps, barriers, shuffles, shared memory) together with
 * native/emu/emu_test.cpp, which launches each kernel on small ragged shapes and compares with scalar references.
 * Skipped, with a message, where g++ is missing.
 */
class CudaEmulationTest {
    private static final long COMPILE_SECONDS = 300, RUN_SECONDS = 300;

    @Test
    void everyKernelMatchesItsScalarReferenceOnTheEmulator() throws IOException, InterruptedException {
        var gxx = NativeToolchain.gxx();
        assumeTrue(gxx.isPresent(), "g++ not found: the CUDA kernels are not run on the CPU emulator");
        Path dir = Files.createDirectories(Path.of("target/emu"));
        Path exe = dir.resolve("emu_test");
        Result compile = run(List.of(gxx.get().toString(), "-std=c++20", "-O1", "-pthread", "-fno-strict-aliasing",
                "-Wall", "-Wno-unknown-pragmas", "-Werror", "-o", exe.toString(),
                NativeToolchain.NATIVE.resolve("emu/emu_test.cpp").toString()), dir.resolve("compile.log"), COMPILE_SECONDS);
        assertEquals(0, compile.exit(), () -> "g++ failed:\n" + compile.output());
        Result result = run(List.of(exe.toAbsolutePath().toString()), dir.resolve("run.log"), RUN_SECONDS);
        assertEquals(0, result.exit(), () -> "kernel checks failed on the emulator:\n" + result.output());
        assertTrue(result.output().lines().anyMatch(l -> l.matches("0 of \\d+ checks failed")), result.output());
        assertTrue(result.output().lines().filter(l -> l.startsWith("ok ")).count() >= 100,
                () -> "fewer checks than expected ran:\n" + result.output());
    }

    private record Result(int exit, String output) {}

    /** Runs a command with its output in a file (no pipe to drain), killed after the time limit. */
    private static Result run(List<String> command, Path log, long seconds) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly().waitFor();
            return new Result(-1, "timed out after " + seconds + " s: " + command + "\n" + Files.readString(log, StandardCharsets.UTF_8));
        }
        return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
    }
}
