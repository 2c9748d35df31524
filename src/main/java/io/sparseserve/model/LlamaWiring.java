package io.sparseserve.model;

import io.sparseserve.model.ModelWeights.Layer;
import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.model.ModelWeights.Mlp;
import io.sparseserve.model.ModelWeights.Norm;
import io.sparseserve.tensor.WeightMatrix;
import java.util.ArrayList;
import java.util.List;

/**
 * Llama (LlamaForCausalLM), and Mistral and Qwen2 which share its names: RMSNorm, rotary positions, grouped-query
 * attention, SwiGLU. Qwen2 has biases on q, k and v but not o; Llama has them on all four when attention_bias is set.
 */
final class LlamaWiring {
    private LlamaWiring() {}

    static ModelWeights wire(ModelConfig c, TensorSource src) {
        WeightMatrix embed = src.matrix("model.embed_tokens.weight", c.vocab(), c.hidden());
        List<Layer> layers = new ArrayList<>();
        for (int i = 0; i < c.layers(); i++) {
            String p = "model.layers." + i + ".";
            String a = p + "self_attn.", m = p + "mlp.";
            layers.add(new Layer(
                    new Norm.Rms(src.vector(p + "input_layernorm.weight", c.hidden()), c.normEps()),
                    linear(src, a + "q_proj", c.qDim(), c.hidden(), c.attentionBias() || c.qkvBias()),
                    linear(src, a + "k_proj", c.kvDim(), c.hidden(), c.attentionBias() || c.qkvBias()),
                    linear(src, a + "v_proj", c.kvDim(), c.hidden(), c.attentionBias() || c.qkvBias()),
                    linear(src, a + "o_proj", c.hidden(), c.qDim(), c.attentionBias()),
                    new Norm.Rms(src.vector(p + "post_attention_layernorm.weight", c.hidden()), c.normEps()),
                    new Mlp.Gated(
                            linear(src, m + "gate_proj", c.intermediate(), c.hidden(), c.mlpBias()),
                            linear(src, m + "up_proj", c.intermediate(), c.hidden(), c.mlpBias()),
                            linear(src, m + "down_proj", c.hidden(), c.intermediate(), c.mlpBias()))));
        }
        Norm finalNorm = new Norm.Rms(src.vector("model.norm.weight", c.hidden()), c.normEps());
        WeightMatrix head = c.tieEmbeddings() ? embed : src.matrix("lm_head.weight", c.vocab(), c.hidden());
        return new ModelWeights(embed, Rotary.tables(c), layers, finalNorm, head);
    }

    static Linear linear(TensorSource src, String module, int rows, int cols, boolean bias) {
        return new Linear(module, src.matrix(module + ".weight", rows, cols), src.optionalVector(module + ".bias", rows, bias));
    }
}
