package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.HostMemory;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The start-up memory check: a KV cache that cannot fit next to the weights is one line saying what is needed and
 * what there is, exit 2, never an OutOfMemoryError; a long-context model whose KV does fit runs, its KV off the heap.
 */
class MemoryFitTest {
    @TempDir Path tmp;

    @Test
    void aKvCacheBeyondTheMachinesMemoryIsOneLineAndExitTwo() {
        CliRunner r = CliRunner.run("serve", "--model", TestData.bundledModel().toString(), "--port", "0",
                "--kv-cache-bytes", Long.toString(1L << 50));
        assertOneLineRefusal(r);
    }

    @Test
    void stepsTooLargeForTheHeapAreOneLineAndExitTwo() {
        String model = TestData.bundledModel().toString();
        // 4M tokens x 688 (the MLP width): past the largest Java array.
        CliRunner tooWide = CliRunner.run("serve", "--model", model, "--port", "0", "--max-batch-tokens", "4000000");
        assertEquals(Main.EXIT_BAD_INPUT, tooWide.exitCode(), tooWide.err());
        assertTrue(tooWide.err().startsWith("error: cpu: steps of 4000000 tokens need activation arrays"), tooWide.err());
        // Activation buffers of 3 x the heap's limit (ten float arrays of tokens x 256 to 688 floats).
        long tokens = Math.min(3_000_000, 3 * Runtime.getRuntime().maxMemory() / (4 * 3000));
        CliRunner tooBig = CliRunner.run("serve", "--model", model, "--port", "0", "--max-batch-tokens", Long.toString(tokens));
        assertEquals(Main.EXIT_BAD_INPUT, tooBig.exitCode(), tooBig.err());
        assertTrue(tooBig.err().startsWith("error: cpu: the Java heap (limit "), tooBig.err());
        for (CliRunner r : new CliRunner[] {tooWide, tooBig}) {
            assertFalse(r.err().contains("\tat "), "stack trace printed:\n" + r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
        }
    }

    /**
     * A Llama 3.1-style 131,072-position context, on a small model made as wide and deep as needed for one f32
     * sequence of KV to exceed this machine's memory (Llama 3.1 8B's would need 32 GiB): refused at start, in one line.
     * The same model generates when the KV asked for is one short sequence's (generate sizes it so).
     */
    @Test
    void aLongContextModelWhoseKvCannotFitIsRefusedAtStartAndRunsShortSequences() {
        long total = HostMemory.read().totalBytes();
        // hidden 128 (2 KV heads of 64): 2 x 128 x 4 bytes = 1 KiB a position and layer, 128 MiB a sequence and layer.
        long perLayer = 131_072L * 2 * 128 * 4;
        int layers = (int) (total / perLayer) + 2;
        Assumptions.assumeTrue(layers <= 512, "this machine's memory (" + total + " bytes) needs " + layers
                + " layers of a long-context model to overflow; too large a model for a unit test");
        Path model = tmp.resolve("long-context");
        CliRunner synth = CliRunner.run("synth", "--family", "llama", "--hidden", "128", "--layers", Integer.toString(layers),
                "--heads", "2", "--intermediate", "32", "--vocab", "4096", "--context", "131072", "--tokenizer",
                TestData.bundledModel().resolve("tokenizer.json").toString(), "--out", model.toString());
        assertEquals(0, synth.exitCode(), synth.err());

        CliRunner serve = CliRunner.run("serve", "--model", model.toString(), "--port", "0");
        assertOneLineRefusal(serve);
        assertTrue(serve.err().contains("in f32"), serve.err());

        CliRunner gen = CliRunner.run("generate", "--model", model.toString(), "--prompt", "The kernel provides",
                "--max-new-tokens", "3", "--ignore-eos", "--kv-dtype", "bf16", "--json");
        assertEquals(0, gen.exitCode(), gen.err());
        assertEquals(3, TestData.jsonText(gen.out()).path("token_ids").size(), gen.out());
    }

    private static void assertOneLineRefusal(CliRunner r) {
        assertEquals(Main.EXIT_BAD_INPUT, r.exitCode(), r.err());
        assertTrue(r.err().startsWith("error: cpu: the model needs "), r.err());
        assertTrue(r.err().contains("GiB), this machine has "), r.err());
        assertFalse(r.err().contains("OutOfMemoryError"), r.err());
        assertFalse(r.err().contains("\tat "), "stack trace printed:\n" + r.err());
        assertEquals(1, r.err().strip().lines().count(), r.err());
    }
}
