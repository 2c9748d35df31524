package io.sparseserve.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.TestData;
import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.Step;
import io.sparseserve.backend.cpu.CpuModelRunner;
import io.sparseserve.backend.cpu.CpuPool;
import io.sparseserve.cli.Main;
import io.sparseserve.model.Model;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A decode step allocates nothing once the kernels are compiled: the forward pass refills its buffers and task
 * objects (no capturing lambdas, no per-layer records), whether the step returns logits or only the argmax. Counted
 * on the calling thread and the pool's workers, for a dense BF16 model (the fused decode kernel), an F16 OPT (the
 * general kernel, LayerNorm, ReLU, biases) and a compressed sparse model.
 */
class DecodeAllocationTest {
    @TempDir Path tmp;

    @Test
    void decodeStepsAllocateNothingOnceCompiled() {
        Path sparse = prune("sparse", "--sparsity", "0.5");
        for (Path dir : new Path[] {TestData.bundledModel(), TestData.fixture(TestData.TINY_OPT), sparse}) {
            try (Model m = Model.load(dir)) {
                assertEquals(0, allocatedPerStepOnceCompiled(m, KvDtype.F32), dir + ": bytes allocated per decode step");
                // bf16 KV: the rounding store and the widening attention allocate nothing either.
                if (dir.equals(TestData.bundledModel())) assertEquals(0, allocatedPerStepOnceCompiled(m, KvDtype.BF16), dir + ": bf16 KV");
            }
        }
    }

    /**
     * Steps of 14 prompt tokens (4x4 tiles and single-token tiles over decoded panels; BF16's 2x4 and 2x2 tiles) and
     * decode steps, over a dense BF16 model, an F16 OPT and a 50% bitmask and a 2:4 model in one JVM, as bench
     * --compare runs several: nothing allocated once compiled. Before the tiles and the sparse decode panel summed
     * their accumulators in scalar code, C2 ran out of its node budget in them and called the vector reduction out of
     * line with boxed vectors (measured on a Zen 5 EPYC: 2:4 prefill at 0.22x dense, batch-1 decode at 0.3x with both
     * sparse formats loaded; 511 MB per round here).
     */
    @Test
    void batchedStepsOverEveryFormatAllocateNothingOnceCompiled() {
        Path bitmask = prune("bitmask", "--sparsity", "0.5"), twoFour = prune("two-four", "--pattern", "2:4");
        try (Model dense = Model.load(TestData.bundledModel()); Model opt = Model.load(TestData.fixture(TestData.TINY_OPT));
             Model a = Model.load(bitmask); Model b = Model.load(twoFour)) {
            assertEquals(0, allocatedPerRoundOnceCompiled(new Model[] {dense, opt, a, b}), "bytes allocated per round of steps");
        }
    }

    private Path prune(String name, String... how) {
        Path out = tmp.resolve(name);
        StringWriter o = new StringWriter(), err = new StringWriter();
        String[] args = {"prune", "--model", TestData.bundledModel().toString(), "--out", out.toString(), "--method", "magnitude"};
        String[] all = java.util.Arrays.copyOf(args, args.length + how.length);
        System.arraycopy(how, 0, all, args.length, how.length);
        assertEquals(0, Main.run(new PrintWriter(o, true), new PrintWriter(err, true), all), err.toString());
        return out;
    }

    /** Bytes allocated per round once compiled ({@link #onceCompiled}); a round, per model: 14 prompt tokens, 8 decodes. */
    private static long allocatedPerRoundOnceCompiled(Model[] models) {
        CpuPool pool = new CpuPool(2);
        int prompt = 14, steps = prompt + 8, vocab = 0;
        CpuModelRunner[] runners = new CpuModelRunner[models.length];
        BlockTable[] tables = new BlockTable[models.length];
        for (int i = 0; i < models.length; i++) {
            runners[i] = new CpuModelRunner(models[i], RunnerConfig.forSequence(prompt, steps), pool, KvDtype.F32);
            tables[i] = new BlockTable(new KvBlockAllocator(runners[i].kvBlocks()), runners[i].blockSize());
            tables[i].ensure(steps);
            vocab = Math.max(vocab, models[i].config().vocab());
        }
        Step b = new Step(prompt, 1);
        float[] logits = new float[vocab];
        int[] argmax = new int[1];
        int[] ids = new int[steps];
        for (int i = 0; i < steps; i++) ids[i] = 1 + i;
        long perRound = onceCompiled(1, () -> {
            for (int i = 0; i < models.length; i++) {
                b.clear();
                b.add(ids, 0, prompt, 0, tables[i].blocks(), tables[i].blockCount(), Step.Output.LAST_LOGITS);
                runners[i].forward(b, logits, argmax);
                for (int p = prompt; p < steps; p++) {
                    b.clear();
                    b.add(ids, p, 1, p, tables[i].blocks(), tables[i].blockCount(), Step.Output.LAST_ARGMAX);
                    runners[i].forward(b, logits, argmax);
                }
            }
        });
        for (int i = 0; i < models.length; i++) {
            tables[i].release();
            runners[i].close();
        }
        return perRound;
    }

    /** Bytes allocated per decode step once compiled ({@link #onceCompiled}). */
    private static long allocatedPerStepOnceCompiled(Model m, KvDtype dtype) {
        CpuPool pool = new CpuPool(2);
        int steps = Math.min(32, m.config().maxPositions());
        CpuModelRunner runner = new CpuModelRunner(m, RunnerConfig.forSequence(1, steps), pool, dtype);
        BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
        table.ensure(steps);
        Step b = new Step(1, 1);
        float[] logits = new float[m.config().vocab()];
        int[] argmax = new int[1];
        int[] ids = new int[steps];
        long perStep = onceCompiled(steps, () -> {
            for (int p = 0; p < steps; p++) {
                b.clear();
                // Both outputs the engine asks for: the logits row, and the argmax alone (greedy rows).
                b.add(ids, p, 1, p, table.blocks(), table.blockCount(), p % 2 == 0 ? Step.Output.LAST_LOGITS : Step.Output.LAST_ARGMAX);
                runner.forward(b, logits, argmax);
            }
        });
        table.release();
        runner.close();
        return perStep;
    }

    /**
     * Runs {@code round} until one allocates nothing (the interpreter boxes vectors), at most 300 times; returns the
     * bytes the last one allocated on this thread and the pool's workers, divided by {@code per}.
     */
    private static long onceCompiled(int per, Runnable round) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long bytes = Long.MAX_VALUE;
        for (int i = 0; i < 300 && bytes != 0; i++) {
            long[] tids = poolAndCaller();
            long[] before = threads.getThreadAllocatedBytes(tids);
            round.run();
            long[] after = threads.getThreadAllocatedBytes(tids);
            long sum = 0;
            for (int t = 0; t < tids.length; t++) sum += after[t] - before[t];
            // Measuring allocates one result array on this thread (16 + 8n bytes), perhaps counted.
            bytes = Math.max(0, sum - 16 - 8L * tids.length) / per;
        }
        return bytes;
    }

    /** This thread and every pool worker ("sparse-serve-cpu-N"). */
    private static long[] poolAndCaller() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t == Thread.currentThread() || t.getName().startsWith("sparse-serve-cpu-"))
                .mapToLong(Thread::threadId).toArray();
    }
}
