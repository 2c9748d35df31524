package io.sparseserve.engine;

import io.sparseserve.backend.Backend;
import io.sparseserve.backend.Backend.AttentionLayout;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.ModelWeights;
import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.ModelWeights.Mlp;
import io.sparseserve.model.ModelWeights.Norm;
import io.sparseserve.model.ModelWeights.Positions;
import io.sparseserve.tensor.WeightMatrix;
import java.util.List;

/**
 * The forward pass of a decoder-only transformer over a {@link Batch} of sequences at different positions, with
 * a paged KV cache. Every linear layer runs once over all tokens of the step (that is what makes batching pay);
 * attention then looks up each token's own sequence. Buffers are sized once for the largest step.
 */
public final class Transformer {
    private final ModelConfig c;
    private final ModelWeights w;
    private final Backend ops;
    private final int maxTokens;

    // Activations, [tokens, width] row-major, reused every step.
    private final float[] x;    // residual stream
    private final float[] xb;   // normed input / projection output
    private final float[] q;
    private final float[] k;
    private final float[] v;
    private final float[] att;
    private final float[] hb;
    private final float[] hb2;
    // The matrices of one fused pass (q, k, v or gate, up), filled per layer: no allocation per step.
    private final WeightMatrix[] passWeights = new WeightMatrix[3];
    private final float[][] passBiases = new float[3][];
    private final float[][] qkvOut;
    private final float[][] gateUpOut;
    private final AttentionLayout layout = new AttentionLayout();

    public Transformer(Model model, Backend ops, int maxTokens) {
        this.c = model.config();
        this.w = model.weights();
        this.ops = ops;
        this.maxTokens = maxTokens;
        int h = c.hidden();
        x = new float[maxTokens * h];
        xb = new float[maxTokens * Math.max(h, c.qDim())];
        q = new float[maxTokens * c.qDim()];
        k = new float[maxTokens * c.kvDim()];
        v = new float[maxTokens * c.kvDim()];
        // Also the head's scratch for up to maxTokens rows of hidden width (head() below): with an explicit
        // head_dim, heads * head_dim may be smaller than hidden.
        att = new float[maxTokens * Math.max(h, c.qDim())];
        hb = new float[maxTokens * c.intermediate()];
        hb2 = new float[maxTokens * c.intermediate()];
        qkvOut = new float[][] {q, k, v};
        gateUpOut = new float[][] {hb, hb2};
    }

    public ModelConfig config() {
        return c;
    }

    public int maxTokens() {
        return maxTokens;
    }

    /**
     * Sees the inputs of a layer's linears as the layer runs (calibration for pruning): called once per distinct input,
     * before the linears that read it run, with those linears and {@code tokens} rows of their input.
     */
    @FunctionalInterface
    public interface LinearInputs {
        void observe(List<Linear> readers, float[] input, int tokens);
    }

    /** Runs one step and writes {@code batch.logitRows()} rows of vocabulary logits into {@code logits}. */
    public void forward(Batch b, KvCache cache, float[] logits) {
        checkTokens(b);
        embed(b, x);
        for (int l = 0; l < w.layers().size(); l++) layer(w.layers().get(l), b, cache, l, x, null);
        head(b, x, logits);
    }

    /** Writes the input embeddings (token plus learned position, where the family has them) of the batch into x. */
    public void embed(Batch b, float[] x) {
        checkTokens(b);
        int n = b.tokens, hidden = c.hidden();
        for (int t = 0; t < n; t++) w.embed().decode(b.tokenIds[t], 1, 0, hidden, x, t * hidden);
        if (w.positions() instanceof Positions.Learned p) {
            for (int t = 0; t < n; t++) p.table().decode(b.positions[t] + p.offset(), 1, 0, hidden, xb, t * hidden);
            ops.add(x, xb, n * hidden);
        }
    }

    /**
     * Runs one decoder layer in place on the residual stream x ({@code b.tokens} rows), its keys and values going to
     * layer {@code cacheLayer} of the cache. The layer need not be the model's own: pruning passes pruned copies.
     */
    public void layer(Layer layer, Batch b, KvCache cache, int cacheLayer, float[] x, LinearInputs observer) {
        checkTokens(b);
        int n = b.tokens, hidden = c.hidden();
        layout.set(n, b.positions, b.tokenSeq, b.tables, cache.blockSize(), c.heads(), c.kvHeads(), c.headDim());
        norm(layer.attnNorm(), x, xb, n);
        if (observer != null) observer.observe(List.of(layer.q(), layer.k(), layer.v()), xb, n);
        linears(xb, n, qkvOut, layer.q(), layer.k(), layer.v());
        if (w.positions() instanceof Positions.Rotary r) {
            ops.rope(q, n, c.qDim(), c.heads(), c.headDim(), b.positions, r.cos(), r.sin());
            ops.rope(k, n, c.kvDim(), c.kvHeads(), c.headDim(), b.positions, r.cos(), r.sin());
        }
        cache.store(cacheLayer, k, v, n, b.positions, b.tokenSeq, b.tables);
        ops.attention(layout, q, cache.keys(cacheLayer), cache.values(cacheLayer), att);
        if (observer != null) observer.observe(List.of(layer.o()), att, n);
        linear(layer.o(), att, n, xb);
        ops.add(x, xb, n * hidden);

        norm(layer.mlpNorm(), x, xb, n);
        switch (layer.mlp()) {
            case Mlp.Gated g -> {
                if (observer != null) observer.observe(List.of(g.gate(), g.up()), xb, n);
                linears(xb, n, gateUpOut, g.gate(), g.up(), null);
                ops.siluMul(hb, hb2, n * c.intermediate());
                if (observer != null) observer.observe(List.of(g.down()), hb, n);
                linear(g.down(), hb, n, xb);
            }
            case Mlp.Plain p -> {
                if (observer != null) observer.observe(List.of(p.fc1()), xb, n);
                linear(p.fc1(), xb, n, hb);
                ops.relu(hb, n * c.intermediate());
                if (observer != null) observer.observe(List.of(p.fc2()), hb, n);
                linear(p.fc2(), hb, n, xb);
            }
        }
        ops.add(x, xb, n * hidden);
    }

    /** The final norm and the head over the rows of x whose logits the batch wants, into {@code logits}. */
    public void head(Batch b, float[] x, float[] logits) {
        int hidden = c.hidden();
        // Only the rows whose logits are wanted go through the final norm and the (large) head.
        int rows = 0;
        for (int s = 0; s < b.seqs; s++) {
            int from = b.seqAllLogits[s] ? b.seqStart[s] : b.seqStart[s] + b.seqCount[s] - 1;
            int count = b.seqAllLogits[s] ? b.seqCount[s] : 1;
            System.arraycopy(x, from * hidden, att, rows * hidden, count * hidden);
            rows += count;
        }
        norm(w.finalNorm(), att, xb, rows);
        ops.matmul(w.lmHead(), xb, 0, rows, logits, 0, null);
    }

    private void checkTokens(Batch b) {
        if (b.tokens > maxTokens) throw new IllegalArgumentException("step of " + b.tokens + " tokens exceeds " + maxTokens);
    }

    private void norm(Norm norm, float[] in, float[] out, int n) {
        switch (norm) {
            case Norm.Rms r -> ops.rmsNorm(in, out, n, c.hidden(), r.weight(), r.eps());
            case Norm.Layer ln -> ops.layerNorm(in, out, n, c.hidden(), ln.weight(), ln.bias(), ln.eps());
        }
    }

    private void linear(Linear lin, float[] in, int n, float[] out) {
        ops.matmul(lin.weight(), in, 0, n, out, 0, lin.bias());
    }

    /** Two or three linears of the same input in one backend call (c null for two). */
    private void linears(float[] in, int n, float[][] outs, Linear a, Linear b, Linear c) {
        int count = c == null ? 2 : 3;
        passWeights[0] = a.weight();
        passWeights[1] = b.weight();
        passBiases[0] = a.bias();
        passBiases[1] = b.bias();
        if (c != null) {
            passWeights[2] = c.weight();
            passBiases[2] = c.bias();
        }
        ops.matmul(passWeights, count, in, n, outs, passBiases);
    }
}
