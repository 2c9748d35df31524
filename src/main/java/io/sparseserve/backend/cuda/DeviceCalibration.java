package io.sparseserve.backend.cuda;

import io.sparseserve.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;

/**
 * The two yardsticks the GPU speed checks are measured against, in the same run: the card's device-to-device copy
 * bandwidth (bytes read + written per second: what a weight-streaming decode step can at best approach) and
 * cuBLAS's GEMM rate on the model's own linear shapes at M tokens (what prefill can at best approach).
 */
public final class DeviceCalibration {
    private DeviceCalibration() {}

    /** GB/s (1e9) of read + written bytes for a copy of {@code bytes}, best of {@code rounds} after one warm-up. */
    public static double copyGbps(CudaContext ctx, long bytes, int rounds) {
        DeviceBuffer a = ctx.memory().allocate(MemoryKind.WORKSPACE, bytes, "copy-bandwidth source");
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WORKSPACE, bytes, "copy-bandwidth target");
        try {
            ctx.zero(a);
            ctx.copy(b.address(), a.address(), bytes);
            float best = Float.MAX_VALUE;
            for (int r = 0; r < rounds; r++) best = Math.min(best, ctx.time(() -> ctx.copy(b.address(), a.address(), bytes)));
            return 2.0 * bytes / (best / 1e3) / 1e9;
        } finally {
            ctx.memory().free(a);
            ctx.memory().free(b);
        }
    }

    /**
     * TFLOP/s of cuBLAS GEMMs {@code y[tokens][rows] = x[tokens][cols] · wᵀ} in {@code dtype} with float32 output, per
     * shape and for the set (a decoder layer's linears weighted by their count), best of {@code rounds}.
     */
    public static Map<String, Object> gemm(CudaContext ctx, Gemm gemm, DType dtype, List<LinearShape> shapes, int tokens,
                                           int rounds) {
        long maxW = 0, maxX = 0, maxY = 0;
        for (LinearShape s : shapes) {
            maxW = Math.max(maxW, (long) s.rows() * s.cols() * dtype.bytes());
            maxX = Math.max(maxX, (long) tokens * s.cols() * dtype.bytes());
            maxY = Math.max(maxY, (long) tokens * s.rows() * 4);
        }
        List<DeviceBuffer> held = new ArrayList<>();
        try {
            DeviceBuffer w = hold(held, ctx, maxW, "GEMM weights"), x = hold(held, ctx, maxX, "GEMM input");
            DeviceBuffer y = hold(held, ctx, maxY, "GEMM output");
            // Random bit patterns of small values (not zeros: tensor cores draw less power on zeros and run faster).
            fillRandom(ctx, w, dtype);
            fillRandom(ctx, x, dtype);
            Map<String, Object> perShape = new LinkedHashMap<>();
            double layerFlops = 0, layerMs = 0;
            for (LinearShape s : shapes) {
                Runnable one = () -> gemm.linear(dtype, w.address(), x.address(), y.address(), s.rows(), s.cols(), tokens, s.cols(), s.rows());
                one.run();
                float best = Float.MAX_VALUE;
                for (int r = 0; r < rounds; r++) best = Math.min(best, ctx.time(one));
                double tflops = s.flops(tokens) / (best / 1e3) / 1e12;
                perShape.put(s.name() + "[" + s.rows() + "x" + s.cols() + "]", tflops);
                layerFlops += s.perLayer() * s.flops(tokens);
                layerMs += s.perLayer() * best;
            }
            Map<String, Object> out = new LinkedHashMap<>();
            out.put("gemm_tflops_m" + tokens, layerFlops / (layerMs / 1e3) / 1e12);
            out.put("gemm_tflops_per_shape", perShape);
            out.put("gemm", gemm.name());
            return out;
        } finally {
            for (DeviceBuffer b : held) ctx.memory().free(b);
        }
    }

    private static DeviceBuffer hold(List<DeviceBuffer> held, CudaContext ctx, long bytes, String what) {
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WORKSPACE, bytes, what);
        held.add(b);
        return b;
    }

    /** Fills a buffer with random values in (-1, 1) of {@code dtype}, from a 16 MiB host pattern repeated. */
    static void fillRandom(CudaContext ctx, DeviceBuffer b, DType dtype) {
        int n = (int) Math.min(b.bytes(), 16L << 20) / dtype.bytes();
        MemorySegment host = MemorySegment.ofArray(new byte[n * dtype.bytes()]);
        Random rnd = new Random(1);
        for (int i = 0; i < n; i++) io.sparseserve.tensor.DTypeConvert.setFloat(host, dtype, i, rnd.nextFloat() * 2 - 1);
        for (long off = 0; off < b.bytes(); off += host.byteSize()) {
            long len = Math.min(host.byteSize(), b.bytes() - off);
            ctx.upload(host.asSlice(0, len), b, off);
        }
    }
}
