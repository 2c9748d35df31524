package io.sparseserve.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The parts of a Hugging Face {@code config.json} the engine needs, with each family's defaults applied
 * (LlamaConfig, MistralConfig, Qwen2Config and OPTConfig in transformers). {@code raw} keeps the whole file for writers
 * that copy it. Mistral and Qwen2 are Llama's wiring: Qwen2 adds biases to q, k and v ({@code qkvBias}), Mistral a
 * sliding attention window ({@code slidingWindow}, 0 = none), served only while the window covers the context.
 */
public record ModelConfig(
        Family family,
        int hidden,
        int intermediate,
        int layers,
        int heads,
        int kvHeads,
        int headDim,
        int vocab,
        int maxPositions,
        float normEps,
        double ropeTheta,
        boolean tieEmbeddings,
        boolean attentionBias,
        boolean mlpBias,
        int bosTokenId,
        int[] eosTokenIds,
        DType torchDtype,
        ObjectNode raw,
        RopeScaling ropeScaling,
        int slidingWindow,
        boolean qkvBias) {

    /** OPT's learned position table is offset by 2 (a fairseq legacy: positions start after the padding index). */
    public static final int OPT_POSITION_OFFSET = 2;

    public int qDim() {
        return heads * headDim;
    }

    public int kvDim() {
        return kvHeads * headDim;
    }

    /**
     * This configuration serving at most {@code maxModelLen} positions (0: as declared): the context, the rotary
     * tables and the KV cache are sized to it (vLLM's --max-model-len). A window narrower than the context served
     * is refused: sliding-window attention is not implemented.
     */
    public ModelConfig served(int maxModelLen) {
        if (maxModelLen < 0 || maxModelLen > maxPositions) {
            throw new InvalidInputException("--max-model-len must be in [1, " + maxPositions
                    + "] (the model's max_position_embeddings), got " + maxModelLen);
        }
        int context = maxModelLen == 0 ? maxPositions : maxModelLen;
        if (slidingWindow > 0 && slidingWindow < context) {
            throw new InvalidInputException("the model's sliding_window " + slidingWindow + " is shorter than the context served "
                    + context + "; sliding-window attention is not supported: serve with --max-model-len " + slidingWindow);
        }
        return new ModelConfig(family, hidden, intermediate, layers, heads, kvHeads, headDim, vocab, context, normEps,
                ropeTheta, tieEmbeddings, attentionBias, mlpBias, bosTokenId, eosTokenIds, torchDtype, raw, ropeScaling,
                slidingWindow, qkvBias);
    }

    /** This configuration with another default stop set (see {@link StopTokens}). */
    public ModelConfig withEosTokenIds(int[] ids) {
        return new ModelConfig(family, hidden, intermediate, layers, heads, kvHeads, headDim, vocab, maxPositions, normEps,
                ropeTheta, tieEmbeddings, attentionBias, mlpBias, bosTokenId, ids.clone(), torchDtype, raw, ropeScaling,
                slidingWindow, qkvBias);
    }

    public static ModelConfig read(Path dir) {
        Path file = dir.resolve("config.json");
        if (!Files.isRegularFile(file)) throw new ModelFormatException(file, "missing config.json");
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new ModelFormatException(file, "not valid JSON: " + firstLine(e.getMessage()));
        }
        if (!(json instanceof ObjectNode root)) throw new ModelFormatException(file, "not a JSON object");
        return parse(file, root);
    }

    static ModelConfig parse(Path file, ObjectNode root) {
        Fields f = new Fields(file, root);
        String type = f.string("model_type");
        Family family = Family.of(type);
        if (family == null) {
            throw new ModelFormatException(file, "unsupported model_type '" + type + "' (supported: llama, mistral, qwen2, opt)");
        }
        DType dtype = switch (root.path("torch_dtype").asText(root.path("dtype").asText("float32"))) {
            case "bfloat16" -> DType.BF16;
            case "float16" -> DType.F16;
            default -> DType.F32;
        };
        int[] eos = f.ids("eos_token_id");
        int bos = root.path("bos_token_id").asInt(-1);
        return switch (family) {
            case LLAMA -> {
                int hidden = f.positive("hidden_size");
                int heads = f.positive("num_attention_heads");
                int kvHeads = f.optPositive("num_key_value_heads", heads);
                if (heads % kvHeads != 0) {
                    throw new ModelFormatException(file, "field 'num_key_value_heads' = " + kvHeads
                            + " must divide num_attention_heads = " + heads);
                }
                int headDim = f.optPositive("head_dim", hidden / heads);
                String act = root.path("hidden_act").asText("silu");
                if (!act.equals("silu")) {
                    throw new ModelFormatException(file, "field 'hidden_act' = '" + act + "' is not supported for llama (silu)");
                }
                boolean qwen2 = type.equals("qwen2");
                // Mistral's window applies to every layer; Qwen2's only when use_sliding_window is set.
                int window = switch (type) {
                    case "mistral" -> f.optPositive("sliding_window", 0);
                    case "qwen2" -> root.path("use_sliding_window").asBoolean(false) ? f.optPositive("sliding_window", 0) : 0;
                    default -> 0;
                };
                yield new ModelConfig(family, hidden, f.positive("intermediate_size"), f.positive("num_hidden_layers"),
                        heads, kvHeads, headDim, f.positive("vocab_size"), f.optPositive("max_position_embeddings", 2048),
                        (float) root.path("rms_norm_eps").asDouble(1e-6), RopeScaling.theta(root),
                        root.path("tie_word_embeddings").asBoolean(false),
                        !qwen2 && root.path("attention_bias").asBoolean(false),
                        root.path("mlp_bias").asBoolean(false), bos, eos, dtype, root, RopeScaling.parse(file, root),
                        window, qwen2);
            }
            case OPT -> {
                int hidden = f.positive("hidden_size");
                int heads = f.positive("num_attention_heads");
                if (hidden % heads != 0) {
                    throw new ModelFormatException(file, "field 'hidden_size' = " + hidden
                            + " is not a multiple of num_attention_heads = " + heads);
                }
                int proj = f.optPositive("word_embed_proj_dim", hidden);
                if (proj != hidden) {
                    throw new ModelFormatException(file, "field 'word_embed_proj_dim' = " + proj
                            + " differs from hidden_size = " + hidden + " (project_in/out is not supported)");
                }
                if (!root.path("do_layer_norm_before").asBoolean(true)) {
                    throw new ModelFormatException(file, "field 'do_layer_norm_before' = false (post-LayerNorm OPT) is not supported");
                }
                String act = root.path("activation_function").asText("relu");
                if (!act.equals("relu")) {
                    throw new ModelFormatException(file, "field 'activation_function' = '" + act + "' is not supported for opt (relu)");
                }
                if (!root.path("layer_norm_elementwise_affine").asBoolean(true)) {
                    throw new ModelFormatException(file, "field 'layer_norm_elementwise_affine' = false is not supported");
                }
                boolean bias = root.path("enable_bias").asBoolean(true);
                yield new ModelConfig(family, hidden, f.positive("ffn_dim"), f.positive("num_hidden_layers"), heads, heads,
                        hidden / heads, f.positive("vocab_size"), f.positive("max_position_embeddings"), 1e-5f, 0,
                        root.path("tie_word_embeddings").asBoolean(true), bias, bias, bos, eos, dtype, root, RopeScaling.NONE,
                        0, false);
            }
        };
    }

    private record Fields(Path file, ObjectNode root) {
        String string(String name) {
            JsonNode n = root.get(name);
            if (n == null || !n.isTextual()) throw new ModelFormatException(file, "missing or non-text field '" + name + "'");
            return n.asText();
        }

        int positive(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) throw new ModelFormatException(file, "missing field '" + name + "'");
            return check(name, n);
        }

        int optPositive(String name, int dflt) {
            JsonNode n = root.get(name);
            return n == null || n.isNull() ? dflt : check(name, n);
        }

        private int check(String name, JsonNode n) {
            if (!n.canConvertToInt() || !n.isIntegralNumber() || n.asInt() <= 0) {
                throw new ModelFormatException(file, "field '" + name + "' = " + n + " must be a positive integer");
            }
            return n.asInt();
        }

        int[] ids(String name) {
            JsonNode n = root.get(name);
            if (n == null || n.isNull()) return new int[0];
            if (n.isArray()) {
                int[] ids = new int[n.size()];
                for (int i = 0; i < ids.length; i++) ids[i] = n.get(i).asInt();
                return ids;
            }
            return new int[] {n.asInt()};
        }
    }

    private static String firstLine(String s) {
        if (s == null) return "";
        int nl = s.indexOf('\n');
        return nl < 0 ? s : s.substring(0, nl);
    }
}
