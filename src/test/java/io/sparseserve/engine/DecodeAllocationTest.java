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
        Path sparse = tmp.resolve("sparse");
        StringWriter out = new StringWriter(), err = new StringWriter();
        int code = Main.run(new PrintWriter(out, true), new PrintWriter(err, true), "prune", "--model",
                TestData.bundledModel().toString(), "--out", sparse.toString(), "--method", "magnitude", "--sparsity", "0.5");
        assertEquals(0, code, err.toString());
        for (Path dir : new Path[] {TestData.bundledModel(), TestData.fixture(TestData.TINY_OPT), sparse}) {
            try (Model m = Model.load(dir)) {
                assertEquals(0, allocatedPerStepOnceCompiled(m, KvDtype.F32), dir + ": bytes allocated per decode step");
                // bf16 KV: the rounding store and the widening attention allocate nothing either.
                if (dir.equals(TestData.bundledModel())) assertEquals(0, allocatedPerStepOnceCompiled(m, KvDtype.BF16), dir + ": bf16 KV");
            }
        }
    }

    /** Runs rounds of decode steps until one allocates nothing (the interpreter boxes vectors), at most 300. */
    private static long allocatedPerStepOnceCompiled(Model m, KvDtype dtype) {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        CpuPool pool = new CpuPool(2);
        int steps = Math.min(32, m.config().maxPositions());
        CpuModelRunner runner = new CpuModelRunner(m, RunnerConfig.forSequence(1, steps), pool, dtype);
        BlockTable table = new BlockTable(new KvBlockAllocator(runner.kvBlocks()), runner.blockSize());
        table.ensure(steps);
        Step b = new Step(1, 1);
        float[] logits = new float[m.config().vocab()];
        int[] argmax = new int[1];
        int[] ids = new int[steps];
        long perStep = Long.MAX_VALUE;
        for (int round = 0; round < 300 && perStep != 0; round++) {
            long[] tids = poolAndCaller();
            long[] before = threads.getThreadAllocatedBytes(tids);
            for (int p = 0; p < steps; p++) {
                b.clear();
                // Both outputs the engine asks for: the logits row, and the argmax alone (greedy rows).
                b.add(ids, p, 1, p, table.blocks(), table.blockCount(), p % 2 == 0 ? Step.Output.LAST_LOGITS : Step.Output.LAST_ARGMAX);
                runner.forward(b, logits, argmax);
            }
            long[] after = threads.getThreadAllocatedBytes(tids);
            long sum = 0;
            for (int i = 0; i < tids.length; i++) sum += after[i] - before[i];
            // Measuring allocates one result array on this thread (16 + 8n bytes), perhaps counted.
            perStep = Math.max(0, sum - 16 - 8L * tids.length) / steps;
        }
        table.release();
        runner.close();
        return perStep;
    }

    /** This thread and every pool worker ("sparse-serve-cpu-N"). */
    private static long[] poolAndCaller() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(t -> t == Thread.currentThread() || t.getName().startsWith("sparse-serve-cpu-"))
                .mapToLong(Thread::threadId).toArray();
    }
}
