package io.sparseserve.backend.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Reads ptxas's report (-Xptxas -v, saved by native/build-ptx.sh to target/cuda/ptxas.log): every kernel the host
 * looks up by name (native/KERNELS.md) was compiled to SASS for sm_80 and sm_90, nothing else was, and no kernel
 * spills to local memory (a spill in a GEMV or attention loop costs bandwidth the decode step lives on). Skipped,
 * with a message, without nvcc.
 */
class PtxasReportTest {
    private static final Pattern ENTRY = Pattern.compile("Compiling entry function '(\\w+)' for '(sm_\\d+)'");
    private static final Pattern SPILLS =
            Pattern.compile("(\\d+) bytes stack frame, (\\d+) bytes spill stores, (\\d+) bytes spill loads");
    private static final Pattern REGS = Pattern.compile("Used (\\d+) registers");

    record Report(int registers, int stack, int spillStores, int spillLoads) {}

    /** The kernel names of KERNELS.md, as the host looks them up. */
    static List<String> expectedKernels() {
        List<String> k = new ArrayList<>(List.of("silu_mul_f32", "relu_f32", "add_f32", "bias_add_f32", "cast_f32_to_bf16",
                "cast_f32_to_f16", "cast_bf16_to_f32", "cast_f16_to_f32", "rms_norm_f32", "layer_norm_f32", "rope_f32",
                "gather_rows_f32", "argmax_f32", "attn_decode_combine", "gemv_tc_bf16_t8", "gemv_tc_bf16_t16"));
        for (String dt : List.of("f32", "f16", "bf16")) {
            k.add("embed_" + dt);
            k.add("expand_bitmask_" + dt);
            k.add("expand_nm24_" + dt);
            for (int t : new int[] {1, 2, 4, 8, 16}) {
                k.add("gemv_" + dt + "_t" + t);
                k.add("spmv_bitmask_" + dt + "_t" + t);
                k.add("spmv_nm24_" + dt + "_t" + t);
            }
        }
        for (String kv : List.of("kvf32", "kvbf16")) {
            k.add("kv_store_" + kv);
            k.add("attn_decode_partial_" + kv);
            k.add("attn_prefill_" + kv);
        }
        return k;
    }

    /** (kernel, arch) -> its registers and spills, from ptxas's report. */
    static Map<String, Report> parse(List<String> lines) {
        Map<String, Report> out = new TreeMap<>();
        String current = null;
        int stack = -1, stores = -1, loads = -1;
        for (String line : lines) {
            Matcher m = ENTRY.matcher(line);
            if (m.find()) {
                current = m.group(1) + "@" + m.group(2);
                continue;
            }
            m = SPILLS.matcher(line);
            if (m.find() && current != null) {
                stack = Integer.parseInt(m.group(1));
                stores = Integer.parseInt(m.group(2));
                loads = Integer.parseInt(m.group(3));
                continue;
            }
            m = REGS.matcher(line);
            if (m.find() && current != null) {
                out.put(current, new Report(Integer.parseInt(m.group(1)), stack, stores, loads));
                current = null;
            }
        }
        return out;
    }

    @Test
    void everyKernelCompiledForBothArchitecturesWithoutSpills() throws IOException {
        assumeTrue(NativeToolchain.nvcc().isPresent(), "nvcc not found: no ptxas report to check");
        assertTrue(Files.isRegularFile(NativeToolchain.PTXAS_LOG), "nvcc exists but " + NativeToolchain.PTXAS_LOG + " is missing");
        Map<String, Report> report = parse(Files.readAllLines(NativeToolchain.PTXAS_LOG));
        var expected = new TreeSet<String>();
        for (String k : expectedKernels()) {
            expected.add(k + "@sm_80");
            expected.add(k + "@sm_90");
        }
        assertEquals(expected, new TreeSet<>(report.keySet()), "kernels compiled (name@arch) differ from KERNELS.md");
        List<String> spilling = report.entrySet().stream()
                .filter(e -> e.getValue().spillStores() != 0 || e.getValue().spillLoads() != 0)
                .map(e -> e.getKey() + " " + e.getValue())
                .toList();
        assertEquals(List.of(), spilling, "kernels spilling to local memory");
    }
}
