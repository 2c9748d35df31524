package io.sparseserve.model;

import io.sparseserve.tensor.WeightMatrix;
import java.util.List;
import java.util.function.UnaryOperator;

/**
 * A decoder-only transformer as the shared building blocks the forward pass runs; each family only decides which
 * tensors fill them. Norm weights and biases are small vectors kept as float arrays (read once per token row);
 * matrices stay in their stored format.
 */
public record ModelWeights(WeightMatrix embed, Positions positions, List<Layer> layers, Norm finalNorm,
                           WeightMatrix lmHead) {

    /** y = x W^T + b; {@code name} is the module's tensor prefix (e.g. "model.layers.0.self_attn.q_proj"). */
    public record Linear(String name, WeightMatrix weight, float[] bias) {}

    public sealed interface Norm {
        /** RMSNorm (Llama): x / sqrt(mean(x^2) + eps) * weight. */
        record Rms(float[] weight, float eps) implements Norm {}

        /** LayerNorm (OPT): (x - mean) / sqrt(var + eps) * weight + bias. */
        record Layer(float[] weight, float[] bias, float eps) implements Norm {}
    }

    public sealed interface Mlp {
        /** SwiGLU (Llama): down(silu(gate(x)) * up(x)). */
        record Gated(Linear gate, Linear up, Linear down) implements Mlp {}

        /** fc2(relu(fc1(x))) (OPT). */
        record Plain(Linear fc1, Linear fc2) implements Mlp {}
    }

    public sealed interface Positions {
        /** Rotary embeddings: cos and sin tables of [maxPositions][headDim / 2]. */
        record Rotary(float[] cos, float[] sin) implements Positions {}

        /** A learned table added to the token embeddings; row = position + offset. */
        record Learned(WeightMatrix table, int offset) implements Positions {}
    }

    /** One decoder layer: pre-norm attention and pre-norm MLP, each added to the residual stream. */
    public record Layer(Norm attnNorm, Linear q, Linear k, Linear v, Linear o, Norm mlpNorm, Mlp mlp) {
        /** The linear layers in execution order, as pruning and inspection walk them. */
        public List<Linear> linears() {
            return switch (mlp) {
                case Mlp.Gated g -> List.of(q, k, v, o, g.gate(), g.up(), g.down());
                case Mlp.Plain p -> List.of(q, k, v, o, p.fc1(), p.fc2());
            };
        }

        /** The same layer with each linear replaced by {@code f} of it (pruning swaps in pruned weights). */
        public Layer withLinears(UnaryOperator<Linear> f) {
            Mlp m = switch (mlp) {
                case Mlp.Gated g -> new Mlp.Gated(f.apply(g.gate()), f.apply(g.up()), f.apply(g.down()));
                case Mlp.Plain p -> new Mlp.Plain(f.apply(p.fc1()), f.apply(p.fc2()));
            };
            return new Layer(attnNorm, f.apply(q), f.apply(k), f.apply(v), f.apply(o), mlpNorm, m);
        }
    }
}
