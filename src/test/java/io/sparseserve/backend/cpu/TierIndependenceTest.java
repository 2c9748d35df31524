package io.sparseserve.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.TestMatrices;
import io.sparseserve.tensor.WeightMatrix;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The CPU kernels give the same bits in every JIT tier: a JVM held to the interpreter ({@code -Xint}) or to C1
 * ({@code -XX:TieredStopAtLevel=1}), where the Vector API runs its Java fallback, computes the same products as this
 * JVM after the kernels have been compiled by C2. These are the kernels whose lane sums and exp used to differ
 * (reduceLanes, lanewise EXP): the f32 panel tiles (4x4, 4x1, one row), the BF16 decode and batched tiles, the
 * bitmask sparse rows, SiLU, and Lanes/VectorExp themselves.
 */
class TierIndependenceTest {
    private static final CpuPool POOL = new CpuPool(2);

    @ParameterizedTest
    @ValueSource(strings = {"-Xint", "-XX:TieredStopAtLevel=1"})
    void kernelsGiveTheSameBitsInterpretedAndCompiled(String tier) throws Exception {
        // 15 000 rounds: past C2's thresholds (10 000 calls and loop trips) for every kernel method involved.
        for (int i = 0; i < 15_000; i++) compute();
        List<Integer> here = compute();
        List<Integer> there = inChild(tier);
        assertEquals(here.size(), there.size());
        for (int i = 0; i < here.size(); i++) {
            if (!here.get(i).equals(there.get(i))) {
                throw new AssertionError("value " + i + " differs in " + tier + ": " + Float.intBitsToFloat(there.get(i))
                        + " vs compiled " + Float.intBitsToFloat(here.get(i)));
            }
        }
    }

    private static List<Integer> inChild(String tier) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(java, tier, "--add-modules", "jdk.incubator.vector",
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"),
                TierIndependenceTest.class.getName()).redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the " + tier + " JVM did not finish");
        }
        assertEquals(0, p.exitValue(), "the " + tier + " JVM failed: " + out);
        List<Integer> bits = new ArrayList<>();
        for (String s : out.trim().split("\\s+")) bits.add(Integer.parseUnsignedInt(s, 16));
        return bits;
    }

    /** Run in the child JVM: prints the bits of {@link #compute()}. */
    public static void main(String[] args) {
        StringBuilder sb = new StringBuilder();
        for (int b : compute()) sb.append(Integer.toHexString(b)).append('\n');
        System.out.print(sb);
    }

    /** The bits of every kernel's results on fixed inputs (shapes with tails past the last full vector). */
    static List<Integer> compute() {
        List<Integer> bits = new ArrayList<>();
        CpuPool pool = POOL;
        CpuMatmul mm = new CpuMatmul(pool);
        int rows = 9, cols = 2 * Lanes.N * 3 + 6, tokens = 5;
        float[] x = TestMatrices.randomVector(tokens * cols, 1), bias = TestMatrices.randomVector(rows, 2);
        float[] wf = TestMatrices.randomVector(rows * cols, 3);
        for (int i = 0; i < wf.length; i += 3) wf[i] = 0f;
        WeightMatrix[] ws = {DenseMatrix.fromFloats(wf, rows, cols, DType.F32), DenseMatrix.fromFloats(wf, rows, cols, DType.BF16),
            BitmaskMatrix.fromDense(wf, rows, cols, DType.BF16)};
        for (WeightMatrix w : ws) {
            for (int t : new int[] {1, tokens}) {
                float[] y = new float[t * rows];
                mm.matmul(w, x, 0, t, y, 0, bias);
                for (float v : y) bits.add(Float.floatToRawIntBits(v));
            }
        }
        float[] gate = TestMatrices.randomVector(3 * Lanes.N + 3, 4), up = TestMatrices.randomVector(gate.length, 5);
        for (int i = 0; i < gate.length; i++) gate[i] *= 8;
        new CpuKernels(pool).siluMul(gate, up, gate.length);
        for (float v : gate) bits.add(Float.floatToRawIntBits(v));
        float[] e = new float[Lanes.N];
        for (int i = 0; i < Lanes.N; i++) e[i] = -20f + 3.7f * i;
        bits.add(Float.floatToRawIntBits(VectorExp.expMinusMax(e, e.length, 1.5f)));
        for (float v : e) bits.add(Float.floatToRawIntBits(v));
        FloatVector[] v = new FloatVector[4];
        for (int i = 0; i < 4; i++) v[i] = FloatVector.fromArray(Lanes.F, x, i * Lanes.N);
        FloatVector s = Lanes.sum4(v[0], v[1], v[2], v[3]);
        for (int i = 0; i < 4; i++) bits.add(Float.floatToRawIntBits(s.lane(i)));
        bits.add(Float.floatToRawIntBits(Lanes.sum(v[0])));
        return bits;
    }
}
