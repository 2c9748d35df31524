package io.sparseserve.cli;

import io.sparseserve.backend.cuda.CudaContext;
import io.sparseserve.backend.cuda.CudaLibraries;
import io.sparseserve.backend.cuda.CudaUnavailableException;
import io.sparseserve.backend.cuda.DeviceCalibration;
import io.sparseserve.backend.cuda.Gemm;
import io.sparseserve.backend.cuda.Gemms;
import io.sparseserve.backend.cuda.LinearShape;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.tensor.DType;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * The GPU yardsticks of issue 8's speed checks, measured by our own code in the run that measures the model: the
 * device-to-device copy bandwidth and cuBLAS's GEMM rate on a Llama's linear shapes at M tokens.
 */
@Command(name = "gpu-calibrate", mixinStandardHelpOptions = true,
        description = "Measure a GPU's copy bandwidth and cuBLAS GEMM rate on Llama linear shapes (yardsticks for bench).")
final class GpuCalibrateCommand implements Callable<Integer> {
    @Spec picocli.CommandLine.Model.CommandSpec spec;

    @Option(names = "--device", defaultValue = "cuda:0", description = "cuda or cuda:N.") String device;
    @Option(names = "--hidden", defaultValue = "4096") int hidden;
    @Option(names = "--kv-dim", description = "Key/value width (default: --hidden).") Integer kvDim;
    @Option(names = "--intermediate", defaultValue = "11008") int intermediate;
    @Option(names = "--vocab", defaultValue = "32000") int vocab;
    @Option(names = "--tokens", defaultValue = "512", description = "GEMM rows M (prompt tokens).") int tokens;
    @Option(names = "--dtype", defaultValue = "bf16", description = "GEMM operand dtype: bf16, f16 or f32.") String dtype;
    @Option(names = "--copy-mb", defaultValue = "1024", description = "Bytes of each copy-bandwidth buffer, MiB.") int copyMb;
    @Option(names = "--json", description = "Print one JSON object.") boolean json;

    @Override
    public Integer call() {
        int ordinal = cudaOrdinal(device);
        for (int v : new int[] {hidden, intermediate, vocab, tokens, copyMb}) {
            if (v <= 0) throw new InvalidInputException("sizes must be positive integers, got " + v);
        }
        DType dt;
        try {
            dt = DType.parse(dtype);
        } catch (IllegalArgumentException e) {
            throw new InvalidInputException("--dtype: " + e.getMessage());
        }
        try (CudaContext ctx = CudaContext.open(ordinal)) {
            Map<String, Object> r = new LinkedHashMap<>();
            r.put("device", ctx.info().toString());
            r.put("peak_dram_gbps", ctx.info().peakDramBytesPerSecond() / 1e9);
            r.put("copy_gbps", DeviceCalibration.copyGbps(ctx, (long) copyMb << 20, 5));
            try (Gemm gemm = Gemms.open(ctx, CudaLibraries.fromEnvironment())) {
                r.putAll(DeviceCalibration.gemm(ctx, gemm, dt,
                        LinearShape.llama(hidden, kvDim == null ? hidden : kvDim, intermediate, vocab), tokens, 5));
            }
            if (json) Json.print(spec.commandLine().getOut(), r);
            else r.forEach((k, v) -> spec.commandLine().getOut().println(k + ": " + v));
            return 0;
        } catch (CudaUnavailableException e) {
            throw new InvalidInputException(e.getMessage());
        }
    }

    /** "cuda" is device 0, "cuda:N" device N. */
    static int cudaOrdinal(String device) {
        if (device.equals("cuda")) return 0;
        if (device.startsWith("cuda:")) {
            try {
                int n = Integer.parseInt(device.substring(5));
                if (n >= 0) return n;
            } catch (NumberFormatException e) {
                // falls through to the message below
            }
        }
        throw new InvalidInputException("--device must be cuda or cuda:N (N >= 0), got '" + device + "'");
    }
}
