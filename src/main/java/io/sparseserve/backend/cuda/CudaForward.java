package io.sparseserve.backend.cuda;

import io.sparseserve.backend.KvDtype;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.tensor.DType;
import java.util.ArrayList;
import java.util.List;

/**
 * One forward step as kernel launches, in the order of {@code backend.cpu.Transformer}: embed (+ learned positions);
 * per layer norm → q, k, v (+bias) → rotary → KV store → attention (split-K decode, or tiled prefill) → o → residual
 * → norm → MLP (gate·up SiLU, or fc1 ReLU) → down → residual; then the wanted rows gathered → final norm → head →
 * argmax. Everything it touches is allocated here once, sized for the runner's largest step, so that a step
 * allocates nothing and a decode step can be captured as a graph.
 *
 * <p>Linear layers: up to 16 token rows through the weight's own GEMV kernel (dense, bitmask or 2:4, bias fused);
 * more rows through cuBLAS (activations cast to the weights' 16-bit dtype; sparse weights expanded first into a
 * scratch matrix); CSR weights through cuSPARSE.
 */
final class CudaForward {
    private final CudaContext ctx;
    private final CudaKernels k;
    private final Gemm gemm;
    private final DeviceModel w;
    private final ModelConfig c;
    private final RunnerConfig config;
    private final KvDtype kvDtype;
    private final SparseUploads sparse;
    private final List<DeviceBuffer> held = new ArrayList<>();
    private final int maxTokens;
    private final int maxSplits;
    // activations, float32 [maxTokens][width]
    private final long x, xb, q, kk, v, att, hb, hb2, headIn, headNorm, logits, argmax;
    // the weights' dtype copy of a cuBLAS input, and a dense copy of a sparse weight for cuBLAS
    private final long cast;
    private long denseScratch;
    private final LinearOps ops;
    private long partOut, partMax, partSum;
    private DeviceBuffer inputs;
    private final List<long[]> kv = new ArrayList<>(); // per layer {kCache, vCache}
    private StepPacking packing;

    CudaForward(CudaContext ctx, CudaKernels kernels, Gemm gemm, DeviceModel weights, ModelConfig c, RunnerConfig config,
                KvDtype kvDtype, SparseUploads sparse) {
        this.ctx = ctx;
        this.k = kernels;
        this.gemm = gemm;
        this.w = weights;
        this.c = c;
        this.config = config;
        this.kvDtype = kvDtype;
        this.sparse = sparse;
        this.maxTokens = config.maxStepTokens();
        this.maxSplits = AttentionPlan.maxSplits(c.maxPositions());
        int h = c.hidden(), wide = Math.max(Math.max(h, c.qDim()), c.intermediate());
        x = f32(h, "residual");
        xb = f32(Math.max(h, c.qDim()), "normed input");
        q = f32(c.qDim(), "q");
        kk = f32(c.kvDim(), "k");
        v = f32(c.kvDim(), "v");
        att = f32(c.qDim(), "attention output");
        hb = f32(c.intermediate(), "mlp hidden");
        hb2 = f32(c.intermediate(), "mlp up");
        // Only the stage that ends the model (all of it without a split) computes logits.
        boolean ends = weights.ends();
        headIn = ends ? f32(h, "head rows") : 0;
        headNorm = ends ? f32(h, "head rows normed") : 0;
        logits = ends ? f32(c.vocab(), "logits") : 0;
        argmax = ends ? f32(1, "argmax ids") : 0;
        cast = alloc((long) maxTokens * wide * 4, "cuBLAS input");
        long largestSparse = 0;
        for (DeviceModel.Layer l : weights.layers) {
            for (DeviceLinear d : new DeviceLinear[] {l.q(), l.k(), l.v(), l.o(), l.gate(), l.up(), l.down()}) {
                if (d != null) largestSparse = Math.max(largestSparse, LinearOps.expandedBytes(d));
            }
        }
        if (largestSparse > 0 && maxTokens > KernelNames.MAX_GEMV_TOKENS) denseScratch = alloc(largestSparse, "expanded sparse weight");
        this.ops = new LinearOps(ctx, kernels, gemm, sparse, cast, denseScratch);
        int decodeRows = config.maxStepSequences();
        partOut = alloc(4 * AttentionPlan.partialOutFloats(decodeRows, c.heads(), maxSplits, c.headDim()), "attention partials");
        partMax = alloc(4 * AttentionPlan.partialStatFloats(decodeRows, c.heads(), maxSplits), "attention partial max");
        partSum = alloc(4 * AttentionPlan.partialStatFloats(decodeRows, c.heads(), maxSplits), "attention partial sums");
    }

    private long f32(int width, String what) {
        return alloc((long) maxTokens * width * 4, what);
    }

    private long alloc(long bytes, String what) {
        DeviceBuffer b = ctx.memory().allocate(MemoryKind.WORKSPACE, Math.max(256, bytes), what);
        held.add(b);
        return b.address();
    }

    /** The residual stream [maxTokens][hidden] float32: what one stage of a split hands the next. */
    long residual() {
        return x;
    }

    /** KV blocks for every layer this forward runs, and the step-input buffer of {@code packing}'s layout. */
    void allocateKv(int blocks, StepPacking packing) {
        this.packing = packing;
        long perLayer = (long) blocks * c.kvHeads() * config.blockSize() * c.headDim() * kvDtype.bytes();
        for (int i = 0; i < w.layers.size(); i++) {
            int l = w.firstLayer + i;
            DeviceBuffer kc = ctx.memory().allocate(MemoryKind.KV, perLayer, "keys of layer " + l);
            DeviceBuffer vc = ctx.memory().allocate(MemoryKind.KV, perLayer, "values of layer " + l);
            held.add(kc);
            held.add(vc);
            kv.add(new long[] {kc.address(), vc.address()});
        }
        inputs = ctx.memory().allocate(MemoryKind.WORKSPACE, 4L * packing.ints(), "step inputs");
        held.add(inputs);
    }

    DeviceBuffer inputs() {
        return inputs;
    }

    DeviceBuffer logits() {
        return new DeviceBuffer(logits, (long) maxTokens * c.vocab() * 4, MemoryKind.WORKSPACE);
    }

    DeviceBuffer argmax() {
        return new DeviceBuffer(argmax, (long) maxTokens * 4, MemoryKind.WORKSPACE);
    }

    private long in(int offsetInts) {
        return inputs.address() + 4L * offsetInts;
    }

    /**
     * Enqueues one step of {@code tokens} rows whose inputs are in {@link #inputs()}: the embeddings where this
     * forward starts the model (else the residual stream is already in {@link #residual()}, copied there by the stage
     * before), its layers, and where it ends the model the head, {@code headRows} rows of logits and argmax.
     */
    void step(int tokens, boolean decode, int headRows) {
        int h = c.hidden();
        long ids = in(packing.idsOffset()), pos = in(packing.positionsOffset()), seqOf = in(packing.tokenSeqOffset());
        long slots = in(packing.slotsOffset()), rows = in(packing.headRowsOffset()), tables = in(packing.tablesOffset());
        if (w.starts()) k.embed(w.embed.dtype(), w.embed.table(), ids, x, tokens, h);
        if (w.starts() && w.positionTable != null) {
            // learned positions: row positions[t] + offset of the table (OPT's offset 2)
            long table = w.positionTable.table() + (long) w.positionOffset * h * w.positionTable.dtype().bytes();
            k.embed(w.positionTable.dtype(), table, pos, xb, tokens, h);
            k.add(x, xb, tokens * h);
        }
        for (int l = 0; l < w.layers.size(); l++) {
            DeviceModel.Layer layer = w.layers.get(l);
            norm(layer.attnNorm(), x, xb, tokens);
            linear(layer.q(), xb, q, tokens);
            linear(layer.k(), xb, kk, tokens);
            linear(layer.v(), xb, v, tokens);
            if (w.cos != 0) {
                k.rope(q, w.cos, w.sin, pos, tokens, c.qDim(), c.heads(), c.headDim());
                k.rope(kk, w.cos, w.sin, pos, tokens, c.kvDim(), c.kvHeads(), c.headDim());
            }
            long[] cache = kv.get(l);
            k.kvStore(kvDtype, kk, v, cache[0], cache[1], slots, tokens, c.kvHeads(), c.headDim(), config.blockSize(), c.kvDim(), c.kvDim());
            if (decode) {
                k.attentionDecode(kvDtype, q, cache[0], cache[1], tables, packing.maxBlocksPerSeq(), seqOf, pos, partOut, partMax,
                        partSum, att, tokens, c.heads(), c.kvHeads(), c.headDim(), config.blockSize(), maxSplits);
            } else {
                k.attentionPrefill(kvDtype, q, cache[0], cache[1], tables, packing.maxBlocksPerSeq(), seqOf, pos, att, tokens,
                        c.heads(), c.kvHeads(), c.headDim(), config.blockSize());
            }
            linear(layer.o(), att, xb, tokens);
            k.add(x, xb, tokens * h);
            norm(layer.mlpNorm(), x, xb, tokens);
            if (layer.gate() != null) {
                linear(layer.gate(), xb, hb, tokens);
                linear(layer.up(), xb, hb2, tokens);
                k.siluMul(hb, hb2, tokens * c.intermediate());
            } else {
                linear(layer.up(), xb, hb, tokens);
                k.relu(hb, tokens * c.intermediate());
            }
            linear(layer.down(), hb, xb, tokens);
            k.add(x, xb, tokens * h);
        }
        if (!w.ends()) return;
        k.gatherRows(x, rows, headIn, headRows, h);
        norm(w.finalNorm, headIn, headNorm, headRows);
        linear(w.head, headNorm, logits, headRows);
        k.argmax(logits, headRows, c.vocab(), c.vocab(), argmax);
    }

    private void linear(DeviceLinear lin, long in, long out, int tokens) {
        ops.linear(lin, in, out, tokens);
    }

    private void norm(DeviceModel.DeviceNorm n, long in, long out, int tokens) {
        if (n.rms()) k.rmsNorm(in, out, n.weight(), tokens, c.hidden(), n.eps());
        else k.layerNorm(in, out, n.weight(), n.bias(), tokens, c.hidden(), n.eps());
    }

    void close() {
        for (DeviceBuffer b : held) ctx.memory().free(b);
        held.clear();
        sparse.close();
    }
}
