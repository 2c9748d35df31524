package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.Step;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/** The CUDA runner's host arithmetic, without a GPU: kernel names, launch plans, step packing. */
class CudaPlanTest {

    /** Every kernel name the runner can ask for is one native/KERNELS.md documents (brace patterns expanded). */
    @Test
    void kernelNamesAreTheDocumentedOnes() throws IOException {
        Path doc = Path.of("native/KERNELS.md");
        Assumptions.assumeTrue(Files.isRegularFile(doc), "native/KERNELS.md not here");
        Set<String> documented = new HashSet<>();
        // "`name(args)`" in the text, or "| `name` | `(args)` |" in the tables
        Matcher m = Pattern.compile("`([a-z0-9_{},]+)(?:\\(|` \\| `\\()").matcher(Files.readString(doc));
        while (m.find()) documented.addAll(expand(m.group(1)));
        List<String> used = new ArrayList<>(List.of("silu_mul_f32", "relu_f32", "add_f32", "bias_add_f32", "rms_norm_f32",
                "layer_norm_f32", "rope_f32", "gather_rows_f32", "argmax_f32", "attn_decode_combine"));
        for (DType d : new DType[] {DType.F32, DType.F16, DType.BF16}) {
            used.add(KernelNames.embed(d));
            used.add(KernelNames.expandBitmask(d));
            used.add(KernelNames.expandNm24(d));
            for (int t = 1; t <= KernelNames.MAX_GEMV_TOKENS; t++) {
                used.add(KernelNames.gemv(d, t));
                used.add(KernelNames.spmvBitmask(d, t));
                used.add(KernelNames.spmvNm24(d, t));
            }
            if (d != DType.F32) used.add(KernelNames.castFromF32(d));
        }
        for (KvDtype kv : KvDtype.values()) {
            used.add(KernelNames.kvStore(kv));
            used.add(KernelNames.attnDecodePartial(kv));
            used.add(KernelNames.attnPrefill(kv));
        }
        for (String name : used) assertTrue(documented.contains(name), name + " is not in KERNELS.md: " + documented);
    }

    private static List<String> expand(String pattern) {
        int open = pattern.indexOf('{');
        if (open < 0) return List.of(pattern);
        int close = pattern.indexOf('}', open);
        List<String> out = new ArrayList<>();
        for (String alt : pattern.substring(open + 1, close).split(",")) {
            out.addAll(expand(pattern.substring(0, open) + alt + pattern.substring(close + 1)));
        }
        return out;
    }

    @Test
    void tokenTilesAreTheSmallestThatHold() {
        int[] expect = {1, 2, 4, 4, 8, 8, 8, 8, 16, 16, 16, 16, 16, 16, 16, 16};
        for (int t = 1; t <= 16; t++) assertEquals(expect[t - 1], KernelNames.tokenTile(t), "tokens " + t);
        assertThrows(IllegalArgumentException.class, () -> KernelNames.tokenTile(17));
        assertEquals("gemv_bf16_t4", KernelNames.gemv(DType.BF16, 3));
        assertEquals(512, KernelNames.gemvBlocks(4096));
        assertEquals(1376, KernelNames.gemvBlocks(11001));
    }

    @Test
    void attentionPlanFollowsTheKernelsFormulas() {
        assertEquals(1, AttentionPlan.maxSplits(1));
        assertEquals(1, AttentionPlan.maxSplits(256));
        assertEquals(2, AttentionPlan.maxSplits(257));
        assertEquals(16, AttentionPlan.maxSplits(4096));
        assertTrue(AttentionPlan.SPLIT_LEN <= AttentionPlan.MAX_SPLIT_LEN);
        // (T (d+1) + T d + 4 d) floats, T = 32 up to d = 128, 16 above
        assertEquals((32 * 65 + 32 * 64 + 4 * 64) * 4, AttentionPlan.prefillSharedBytes(64));
        assertEquals((32 * 129 + 32 * 128 + 4 * 128) * 4, AttentionPlan.prefillSharedBytes(128));
        assertEquals((16 * 257 + 16 * 256 + 4 * 256) * 4, AttentionPlan.prefillSharedBytes(256));
        assertEquals(3, AttentionPlan.prefillBlocks(9));
        assertEquals(5L * 32 * 16 * 128, AttentionPlan.partialOutFloats(5, 32, 16, 128));
        assertEquals(0.125f, AttentionPlan.scale(64));
    }

    /**
     * A mixed step (a 3-token prefill chunk wanting all logits, a greedy decode token, a sampled decode token) packs
     * into the kernels' arrays: KV slots from the block tables, the tables padded, head rows logits-first.
     */
    @Test
    void stepPacksIntoKernelArrays() {
        int blockSize = 4;
        Step step = new Step(8, 4);
        step.add(new int[] {11, 12, 13}, 0, 3, 3, new int[] {7, 2}, 2, Step.Output.ALL_LOGITS); // positions 3, 4, 5
        step.add(new int[] {21}, 0, 1, 9, new int[] {0, 1, 5}, 3, Step.Output.LAST_ARGMAX);     // position 9
        step.add(new int[] {31}, 0, 1, 0, new int[] {3}, 1, Step.Output.LAST_LOGITS);          // position 0
        StepPacking p = new StepPacking(8, 4, 3, blockSize);
        p.pack(step, 6);
        int[] d = p.data();
        assertArrayEquals(new int[] {11, 12, 13, 21, 31, 0}, slice(d, p.idsOffset(), 6));
        assertArrayEquals(new int[] {3, 4, 5, 9, 0, 0}, slice(d, p.positionsOffset(), 6));
        assertArrayEquals(new int[] {0, 0, 0, 1, 2, 0}, slice(d, p.tokenSeqOffset(), 6));
        // position 3 -> block 7 offset 3; 4, 5 -> block 2 offsets 0, 1; 9 -> block 5 offset 1; 0 -> block 3; padding -1
        assertArrayEquals(new int[] {31, 8, 9, 21, 12, -1}, slice(d, p.slotsOffset(), 6));
        assertArrayEquals(new int[] {7, 2, 0, 0, 1, 5, 3, 0, 0}, slice(d, p.tablesOffset(), 9));
        // logits rows: the prefill's three tokens, then the sampled token; then the greedy token's row
        assertEquals(4, p.logitRows());
        assertEquals(1, p.argmaxRows());
        assertArrayEquals(new int[] {0, 1, 2, 4, 3, 0}, slice(d, p.headRowsOffset(), 6));
        assertTrue(!StepPacking.isDecode(step));
        Step decode = new Step(8, 4);
        decode.add(new int[] {5}, 0, 1, 2, new int[] {1}, 1, Step.Output.LAST_ARGMAX);
        assertTrue(StepPacking.isDecode(decode));
        assertThrows(IllegalArgumentException.class, () -> p.pack(decode, 9));
    }

    private static int[] slice(int[] a, int from, int n) {
        return java.util.Arrays.copyOfRange(a, from, from + n);
    }

    @Test
    void llamaShapesCountEveryLinear() {
        List<LinearShape> s = LinearShape.llama(4096, 4096, 11008, 32000);
        assertEquals(8, s.size());
        long perLayer = s.stream().mapToLong(x -> (long) x.rows() * x.cols() * x.perLayer()).sum();
        assertEquals(4L * 4096 * 4096 + 3L * 4096 * 11008, perLayer); // Llama-2-7B: 202 M weights per layer
        assertEquals(2.0 * 4096 * 11008 * 512, s.get(6).flops(512));
    }
}
