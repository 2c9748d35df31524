package io.sparseserve.backend.cuda;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.tensor.DType;
import java.util.HashMap;
import java.util.Map;
import jcuda.driver.CUfunction;
import jcuda.driver.CUmodule;

/**
 * Typed launches of the fatbin's kernels, one method per kernel family, with the argument order and launch shape of
 * native/KERNELS.md. Functions are looked up on first use and kept. All launches go to the context's one stream.
 */
public final class CudaKernels {
    private static final int ELEMENTWISE_BLOCK = 256;

    private final CudaContext ctx;
    private final CUmodule module;
    private final Map<String, CUfunction> functions = new HashMap<>();
    private final int maxElementwiseBlocks;

    public CudaKernels(CudaContext ctx, CUmodule module) {
        this.ctx = ctx;
        this.module = module;
        this.maxElementwiseBlocks = 8 * ctx.info().multiprocessors();
    }

    private void launch(String name, LaunchShape shape, KernelArgs args) {
        CUfunction f = functions.computeIfAbsent(name, n -> ctx.function(module, n));
        ctx.launch(name, f, shape, args);
    }

    /** Grid-stride elementwise kernels: min(ceil(n/256), 8 · SMs) blocks of 256. */
    private LaunchShape elementwise(long n) {
        return LaunchShape.of((int) Math.min(LaunchShape.blocksFor(n, ELEMENTWISE_BLOCK), maxElementwiseBlocks), ELEMENTWISE_BLOCK);
    }

    public void siluMul(long gate, long up, int n) {
        launch("silu_mul_f32", elementwise(n), new KernelArgs().ptr(gate).ptr(up).i32(n));
    }

    public void relu(long x, int n) {
        launch("relu_f32", elementwise(n), new KernelArgs().ptr(x).i32(n));
    }

    public void add(long x, long y, int n) {
        launch("add_f32", elementwise(n), new KernelArgs().ptr(x).ptr(y).i32(n));
    }

    public void biasAdd(long y, long bias, int tokens, int dim, int ldy) {
        launch("bias_add_f32", elementwise((long) tokens * dim), new KernelArgs().ptr(y).ptr(bias).i32(tokens).i32(dim).i32(ldy));
    }

    public void castFromF32(DType to, long x, long y, int n) {
        launch(KernelNames.castFromF32(to), elementwise(n), new KernelArgs().ptr(x).ptr(y).i32(n));
    }

    public void rmsNorm(long x, long out, long weight, int tokens, int dim, float eps) {
        launch("rms_norm_f32", LaunchShape.of(tokens, 256), new KernelArgs().ptr(x).ptr(out).ptr(weight).i32(dim).f32(eps));
    }

    public void layerNorm(long x, long out, long weight, long bias, int tokens, int dim, float eps) {
        launch("layer_norm_f32", LaunchShape.of(tokens, 256), new KernelArgs().ptr(x).ptr(out).ptr(weight).ptr(bias).i32(dim).f32(eps));
    }

    public void rope(long x, long cos, long sin, long positions, int tokens, int stride, int heads, int headDim) {
        launch("rope_f32", LaunchShape.of(tokens, 128),
                new KernelArgs().ptr(x).ptr(cos).ptr(sin).ptr(positions).i32(stride).i32(heads).i32(headDim));
    }

    public void embed(DType dtype, long table, long ids, long out, int tokens, int dim) {
        launch(KernelNames.embed(dtype), LaunchShape.of(tokens, 256), new KernelArgs().ptr(table).ptr(ids).ptr(out).i32(dim));
    }

    public void gatherRows(long src, long rows, long dst, int n, int dim) {
        launch("gather_rows_f32", LaunchShape.of(n, 256), new KernelArgs().ptr(src).ptr(rows).ptr(dst).i32(dim));
    }

    public void argmax(long logits, int rows, int vocab, int ld, long out) {
        launch("argmax_f32", LaunchShape.of(rows, 1024), new KernelArgs().ptr(logits).i32(vocab).i32(ld).ptr(out));
    }

    public void kvStore(KvDtype kv, long k, long v, long kCache, long vCache, long slots, int tokens, int kvHeads, int headDim,
                        int blockSize, int ldk, int ldv) {
        launch(KernelNames.kvStore(kv), LaunchShape.of(tokens, 128), new KernelArgs().ptr(k).ptr(v).ptr(kCache).ptr(vCache)
                .ptr(slots).i32(kvHeads).i32(headDim).i32(blockSize).i32(ldk).i32(ldv));
    }

    /** Split-K decode: the partial pass, then the combine (KERNELS.md "Decode, split-K"). */
    public void attentionDecode(KvDtype kv, long q, long kCache, long vCache, long tables, int maxBlocksPerSeq, long tokenSeq,
                                long positions, long partOut, long partMax, long partSum, long out, int tokens, int heads,
                                int kvHeads, int headDim, int blockSize, int maxSplits) {
        launch(KernelNames.attnDecodePartial(kv), new LaunchShape(heads, tokens, maxSplits, 128, 1, 1, 0),
                new KernelArgs().ptr(q).ptr(kCache).ptr(vCache).ptr(tables).i32(maxBlocksPerSeq).ptr(tokenSeq).ptr(positions)
                        .ptr(partOut).ptr(partMax).ptr(partSum).i32(heads).i32(kvHeads).i32(headDim).i32(blockSize)
                        .i32(AttentionPlan.SPLIT_LEN).i32(maxSplits).f32(AttentionPlan.scale(headDim)));
        launch("attn_decode_combine", new LaunchShape(heads, tokens, 1, 128, 1, 1, 0),
                new KernelArgs().ptr(partOut).ptr(partMax).ptr(partSum).ptr(positions).ptr(out).i32(heads).i32(headDim)
                        .i32(AttentionPlan.SPLIT_LEN).i32(maxSplits));
    }

    public void attentionPrefill(KvDtype kv, long q, long kCache, long vCache, long tables, int maxBlocksPerSeq, long tokenSeq,
                                 long positions, long out, int tokens, int heads, int kvHeads, int headDim, int blockSize) {
        int shared = AttentionPlan.prefillSharedBytes(headDim);
        if (shared > 48 * 1024) {
            // Above 48 KB a kernel must opt in to more dynamic shared memory (CUDA Programming Guide, "Shared Memory").
            CUfunction f = functions.computeIfAbsent(KernelNames.attnPrefill(kv), n -> ctx.function(module, n));
            Cu.check("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", jcuda.driver.JCudaDriver.cuFuncSetAttribute(f,
                    jcuda.driver.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, shared));
        }
        launch(KernelNames.attnPrefill(kv), new LaunchShape(AttentionPlan.prefillBlocks(tokens), heads, 1, 128, 1, 1,
                        AttentionPlan.prefillSharedBytes(headDim)),
                new KernelArgs().ptr(q).ptr(kCache).ptr(vCache).ptr(tables).i32(maxBlocksPerSeq).ptr(tokenSeq).ptr(positions)
                        .ptr(out).i32(tokens).i32(heads).i32(kvHeads).i32(headDim).i32(blockSize).f32(AttentionPlan.scale(headDim)));
    }

    /** y[t·ldy + r] = Σ_k x[t·ldx + k]·W[r·cols + k] (+ bias) for 1..16 tokens, by the weight's own kernel. */
    public void gemv(DeviceLinear w, long x, long y, int tokens, int ldx, int ldy) {
        LaunchShape shape = LaunchShape.of(KernelNames.gemvBlocks(w.rows()), 256);
        switch (w) {
            case DeviceLinear.Dense d -> launch(KernelNames.gemv(d.dtype(), tokens), shape, new KernelArgs().ptr(d.w()).ptr(x).ptr(y)
                    .ptr(d.bias()).i32(d.rows()).i32(d.cols()).i32(tokens).i32(ldx).i32(ldy));
            case DeviceLinear.Bitmask b -> launch(KernelNames.spmvBitmask(b.dtype(), tokens), shape, new KernelArgs().ptr(b.bits())
                    .ptr(b.values()).ptr(b.rowStart()).ptr(x).ptr(y).ptr(b.bias()).i32(b.rows()).i32(b.cols()).i32(tokens)
                    .i32(ldx).i32(ldy));
            case DeviceLinear.Nm24 n -> launch(KernelNames.spmvNm24(n.dtype(), tokens), shape, new KernelArgs().ptr(n.meta())
                    .ptr(n.values()).ptr(x).ptr(y).ptr(n.bias()).i32(n.rows()).i32(n.cols()).i32(tokens).i32(ldx).i32(ldy));
            case DeviceLinear.Csr c -> throw new IllegalArgumentException("CSR matrices multiply through cuSPARSE");
            case DeviceLinear.PerPhase p -> gemv(p.decode(), x, y, tokens, ldx, ldy);
        }
    }

    /** Writes a sparse weight as dense [rows][cols] in its dtype into {@code dense} (for cuBLAS prefill). */
    public void expand(DeviceLinear w, long dense) {
        switch (w) {
            case DeviceLinear.Bitmask b -> launch(KernelNames.expandBitmask(b.dtype()), LaunchShape.of(KernelNames.gemvBlocks(b.rows()), 256),
                    new KernelArgs().ptr(b.bits()).ptr(b.values()).ptr(b.rowStart()).ptr(dense).i32(b.rows()).i32(b.cols()));
            case DeviceLinear.Nm24 n -> launch(KernelNames.expandNm24(n.dtype()),
                    LaunchShape.of(LaunchShape.blocksFor((long) n.rows() * n.cols() / 4, 256), 256),
                    new KernelArgs().ptr(n.meta()).ptr(n.values()).ptr(dense).i32(n.rows()).i32(n.cols()));
            case DeviceLinear.PerPhase p -> expand(p.prefill(), dense);
            default -> throw new IllegalArgumentException("only bitmask and 2:4 matrices expand");
        }
    }
}
