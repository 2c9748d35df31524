package io.sparseserve.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.SplittableRandom;

/**
 * Writes a random-weight model folder of a given family, shape and dtype in Hugging Face layout, for benchmarks
 * and tests: linear and embedding weights ~ N(0, 0.02^2) (GPT-2's initialisation), norms at 1, biases small.
 */
public final class SyntheticModel {
    private SyntheticModel() {}

    public record Shape(Family family, int hidden, int layers, int heads, int kvHeads, int intermediate, int vocab,
                        int context) {
        int headDim() {
            return hidden / heads;
        }
    }

    public static void write(Shape s, DType dtype, long seed, Path tokenizer, Path out) throws IOException {
        if (s.hidden % s.heads != 0) throw new InvalidInputException("--hidden " + s.hidden + " must be a multiple of --heads " + s.heads);
        if (s.heads % s.kvHeads != 0) throw new InvalidInputException("--kv-heads " + s.kvHeads + " must divide --heads " + s.heads);
        if (s.family == Family.OPT && s.kvHeads != s.heads) throw new InvalidInputException("--kv-heads must equal --heads for opt");
        Files.createDirectories(out);
        SplittableRandom rnd = new SplittableRandom(seed);
        try (Arena arena = Arena.ofConfined()) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            Gen g = new Gen(w, arena, rnd, dtype);
            int h = s.hidden, kv = s.kvHeads * s.headDim();
            if (s.family == Family.LLAMA) {
                g.normal("model.embed_tokens.weight", s.vocab, h);
                for (int i = 0; i < s.layers; i++) {
                    String p = "model.layers." + i + ".";
                    g.ones(p + "input_layernorm.weight", h);
                    g.normal(p + "self_attn.q_proj.weight", h, h);
                    g.normal(p + "self_attn.k_proj.weight", kv, h);
                    g.normal(p + "self_attn.v_proj.weight", kv, h);
                    g.normal(p + "self_attn.o_proj.weight", h, h);
                    g.ones(p + "post_attention_layernorm.weight", h);
                    g.normal(p + "mlp.gate_proj.weight", s.intermediate, h);
                    g.normal(p + "mlp.up_proj.weight", s.intermediate, h);
                    g.normal(p + "mlp.down_proj.weight", h, s.intermediate);
                }
                g.ones("model.norm.weight", h);
                g.normal("lm_head.weight", s.vocab, h);
            } else {
                String d = "model.decoder.";
                g.normal(d + "embed_tokens.weight", s.vocab, h);
                g.normal(d + "embed_positions.weight", s.context + ModelConfig.OPT_POSITION_OFFSET, h);
                for (int i = 0; i < s.layers; i++) {
                    String p = d + "layers." + i + ".";
                    g.ones(p + "self_attn_layer_norm.weight", h);
                    g.bias(p + "self_attn_layer_norm.bias", h);
                    for (String m : new String[] {"q_proj", "k_proj", "v_proj", "out_proj"}) {
                        g.normal(p + "self_attn." + m + ".weight", h, h);
                        g.bias(p + "self_attn." + m + ".bias", h);
                    }
                    g.ones(p + "final_layer_norm.weight", h);
                    g.bias(p + "final_layer_norm.bias", h);
                    g.normal(p + "fc1.weight", s.intermediate, h);
                    g.bias(p + "fc1.bias", s.intermediate);
                    g.normal(p + "fc2.weight", h, s.intermediate);
                    g.bias(p + "fc2.bias", h);
                }
                g.ones(d + "final_layer_norm.weight", h);
                g.bias(d + "final_layer_norm.bias", h);
            }
            w.write(out.resolve("model.safetensors"));
        }
        writeConfig(s, dtype, out.resolve("config.json"));
        if (tokenizer != null) Files.copy(tokenizer, out.resolve("tokenizer.json"), StandardCopyOption.REPLACE_EXISTING);
    }

    private static void writeConfig(Shape s, DType dtype, Path file) throws IOException {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode c = json.createObjectNode();
        String torchDtype = switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        };
        if (s.family == Family.LLAMA) {
            c.putArray("architectures").add("LlamaForCausalLM");
            c.put("model_type", "llama");
            c.put("hidden_size", s.hidden);
            c.put("intermediate_size", s.intermediate);
            c.put("num_attention_heads", s.heads);
            c.put("num_key_value_heads", s.kvHeads);
            c.put("num_hidden_layers", s.layers);
            c.put("rms_norm_eps", 1e-5);
            c.put("rope_theta", 10000.0);
            c.put("hidden_act", "silu");
            c.put("tie_word_embeddings", false);
        } else {
            c.putArray("architectures").add("OPTForCausalLM");
            c.put("model_type", "opt");
            c.put("hidden_size", s.hidden);
            c.put("ffn_dim", s.intermediate);
            c.put("num_attention_heads", s.heads);
            c.put("num_hidden_layers", s.layers);
            c.put("word_embed_proj_dim", s.hidden);
            c.put("do_layer_norm_before", true);
            c.put("activation_function", "relu");
            c.put("enable_bias", true);
        }
        c.put("max_position_embeddings", s.context);
        c.put("vocab_size", s.vocab);
        c.put("bos_token_id", 0);
        c.put("eos_token_id", 0);
        c.put("torch_dtype", torchDtype);
        json.writeValue(file.toFile(), c);
    }

    /** Fills tensors of the target dtype from float values. */
    private record Gen(SafetensorsWriter w, Arena arena, SplittableRandom rnd, DType dtype) {
        void normal(String name, int rows, int cols) {
            float[] v = new float[rows * cols];
            for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextGaussian() * 0.02);
            add(name, v, new long[] {rows, cols});
        }

        void ones(String name, int n) {
            float[] v = new float[n];
            java.util.Arrays.fill(v, 1f);
            add(name, v, new long[] {n});
        }

        void bias(String name, int n) {
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (float) (rnd.nextGaussian() * 0.01);
            add(name, v, new long[] {n});
        }

        private void add(String name, float[] values, long[] shape) {
            MemorySegment le = arena.allocate((long) values.length * 4, 8);
            MemorySegment.copy(values, 0, le, ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0, values.length);
            MemorySegment data = dtype == DType.F32 ? le : DTypeConvert.convert(le, DType.F32, dtype, arena);
            w.add(name, dtype, shape, data);
        }
    }
}
