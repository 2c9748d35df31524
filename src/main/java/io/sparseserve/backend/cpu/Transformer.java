package io.sparseserve.backend.cpu;

import io.sparseserve.backend.Backend;
import io.sparseserve.backend.Backend.AttentionLayout;
import io.sparseserve.backend.Step;
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
 * The forward pass of a decoder-only transformer over a {@link Step} of sequences at different positions, with
 * a paged KV cache, on the per-operation {@link Backend}: the CPU runner's ({@link CpuModelRunner}), and pruning's,
 * which runs single layers with pruned copies ({@link #layer}). Every linear layer runs once over all tokens of the
 * step (that is what makes batching pay); attention then looks up each token's own sequence. Buffers are sized once
 * for the largest step.
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
    private final int[] promptRows; // the step's prompt tokens (Step.promptRows), for the linears
    private int promptCount;

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
        promptRows = new int[maxTokens];
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

    /**
     * Runs one step and writes the vocabulary logits of the rows the step returns into {@code logits}: first the
     * {@code step.logitRows()} rows of the sequences that want logits, then one row for each sequence that wants an
     * argmax, in sequence order (the caller sizes logits for both).
     */
    public void forward(Step b, KvCache cache, float[] logits) {
        checkTokens(b);
        embed(b, x);
        for (int l = 0; l < w.layers().size(); l++) layer(w.layers().get(l), b, cache, l, x, null);
        head(b, x, logits);
    }

    /** Bytes of the activation buffers, and of the backend's scratch as it stands (it grows with the steps run). */
    public long activationBytes() {
        long floats = x.length + xb.length + q.length + k.length + v.length + att.length + hb.length + hb2.length;
        return floats * Float.BYTES + ops.scratchBytes();
    }

    /** Writes the input embeddings (token plus learned position, where the family has them) of the batch into x. */
    public void embed(Step b, float[] x) {
        checkTokens(b);
        int n = b.tokens(), hidden = c.hidden();
        int[] ids = b.tokenIds(), positions = b.positions();
        for (int t = 0; t < n; t++) w.embed().decode(ids[t], 1, 0, hidden, x, t * hidden);
        if (w.positions() instanceof Positions.Learned p) {
            for (int t = 0; t < n; t++) p.table().decode(positions[t] + p.offset(), 1, 0, hidden, xb, t * hidden);
            ops.add(x, xb, n * hidden);
        }
    }

    /**
     * Runs one decoder layer in place on the residual stream x ({@code b.tokens()} rows), its keys and values going to
     * layer {@code cacheLayer} of the cache. The layer need not be the model's own: pruning passes pruned copies.
     */
    public void layer(Layer layer, Step b, KvCache cache, int cacheLayer, float[] x, LinearInputs observer) {
        checkTokens(b);
        int n = b.tokens(), hidden = c.hidden();
        int[] positions = b.positions();
        layout.set(n, positions, b.tokenSeq(), b.blockTables(), cache.blockSize(), c.heads(), c.kvHeads(), c.headDim());
        promptCount = b.promptRows(promptRows);
        norm(layer.attnNorm(), x, xb, n);
        if (observer != null) observer.observe(List.of(layer.q(), layer.k(), layer.v()), xb, n);
        linears(xb, n, qkvOut, layer.q(), layer.k(), layer.v());
        if (w.positions() instanceof Positions.Rotary r) {
            ops.rope(q, n, c.qDim(), c.heads(), c.headDim(), positions, r.cos(), r.sin());
            ops.rope(k, n, c.kvDim(), c.kvHeads(), c.headDim(), positions, r.cos(), r.sin());
        }
        cache.store(cacheLayer, k, v, n, positions, b.tokenSeq(), b.blockTables());
        ops.attention(layout, q, cache.keys(cacheLayer), cache.values(cacheLayer), cache.dtype(), att);
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

    /**
     * The final norm and the head over the rows of x whose logits the step wants, into {@code logits}: the logits rows
     * in sequence order, then the argmax sequences' last rows ({@link #forward}).
     */
    public void head(Step b, float[] x, float[] logits) {
        int hidden = c.hidden();
        // Only the rows whose logits are wanted go through the final norm and the (large) head.
        int rows = 0;
        for (int s = 0; s < b.sequences(); s++) {
            if (b.output(s) == Step.Output.LAST_ARGMAX) continue;
            int count = b.rows(s);
            int from = b.lastToken(s) + 1 - count;
            System.arraycopy(x, from * hidden, att, rows * hidden, count * hidden);
            rows += count;
        }
        for (int s = 0; s < b.sequences(); s++) {
            if (b.output(s) != Step.Output.LAST_ARGMAX) continue;
            System.arraycopy(x, b.lastToken(s) * hidden, att, rows * hidden, hidden);
            rows++;
        }
        norm(w.finalNorm(), att, xb, rows);
        ops.matmul(w.lmHead(), xb, 0, rows, logits, 0, null);
    }

    private void checkTokens(Step b) {
        if (b.tokens() > maxTokens) throw new IllegalArgumentException("step of " + b.tokens() + " tokens exceeds " + maxTokens);
    }

    private void norm(Norm norm, float[] in, float[] out, int n) {
        switch (norm) {
            case Norm.Rms r -> ops.rmsNorm(in, out, n, c.hidden(), r.weight(), r.eps());
            case Norm.Layer ln -> ops.layerNorm(in, out, n, c.hidden(), ln.weight(), ln.bias(), ln.eps());
        }
    }

    private void linear(Linear lin, float[] in, int n, float[] out) {
        ops.matmul(lin.weight(), in, 0, n, out, 0, lin.bias(), promptRows, promptCount);
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
        ops.matmul(passWeights, count, in, n, outs, passBiases, promptRows, promptCount);
    }
}
