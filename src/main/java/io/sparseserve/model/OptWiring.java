package io.sparseserve.model;

import static io.sparseserve.model.LlamaWiring.linear;

import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Mlp;
import io.sparseserve.model.ModelWeights.Norm;
import io.sparseserve.model.ModelWeights.Positions;
import io.sparseserve.tensor.WeightMatrix;
import java.util.ArrayList;
import java.util.List;

/**
 * OPT (OPTForCausalLM), the family of the SparseGPT paper: pre-LayerNorm, learned positions offset by 2, biases,
 * ReLU, head tied to embed_tokens. Checkpoints name tensors "model.decoder.*" or, from OPTModel, "decoder.*".
 */
final class OptWiring {
    private OptWiring() {}

    static ModelWeights wire(ModelConfig c, TensorSource src) {
        String d = src.has("model.decoder.embed_tokens.weight") ? "model.decoder." : "decoder.";
        WeightMatrix embed = src.matrix(d + "embed_tokens.weight", c.vocab(), c.hidden());
        WeightMatrix positions = src.matrix(d + "embed_positions.weight",
                c.maxPositions() + ModelConfig.OPT_POSITION_OFFSET, c.hidden());
        boolean b = c.attentionBias();
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.layers(); i++) {
            String p = d + "layers." + i + ".";
            layers.add(new Layer(
                    layerNorm(src, p + "self_attn_layer_norm", c),
                    linear(src, p + "self_attn.q_proj", c.hidden(), c.hidden(), b),
                    linear(src, p + "self_attn.k_proj", c.hidden(), c.hidden(), b),
                    linear(src, p + "self_attn.v_proj", c.hidden(), c.hidden(), b),
                    linear(src, p + "self_attn.out_proj", c.hidden(), c.hidden(), b),
                    layerNorm(src, p + "final_layer_norm", c),
                    new Mlp.Plain(
                            linear(src, p + "fc1", c.intermediate(), c.hidden(), b),
                            linear(src, p + "fc2", c.hidden(), c.intermediate(), b))));
        }
        WeightMatrix head = c.tieEmbeddings() ? embed : src.matrix("lm_head.weight", c.vocab(), c.hidden());
        return new ModelWeights(embed, new Positions.Learned(positions, ModelConfig.OPT_POSITION_OFFSET), layers,
                layerNorm(src, d + "final_layer_norm", c), head);
    }

    private static Norm layerNorm(TensorSource src, String module, ModelConfig c) {
        return new Norm.Layer(src.vector(module + ".weight", c.hidden()), src.vector(module + ".bias", c.hidden()), c.normEps());
    }
}
