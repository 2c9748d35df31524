package io.sparseserve.plan;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The sizes of a model that a memory plan needs, read leniently from a Hugging Face {@code config.json}: only shapes,
 * never whether the server can load the model (a plan for a model with {@code rope_scaling} or a family the engine
 * does not wire yet is still a plan). Defaults follow transformers' LlamaConfig, Qwen2Config and OPTConfig.
 *
 * @param dtype            {@code torch_dtype} of the file, or null when the config does not say
 * @param sparsity         the pruned format the folder is stored in ({@code quantization_config.sparsity_config}),
 *                         or null for a dense model
 */
public record ModelShape(String name, String family, int hidden, int layers, int heads, int kvHeads, int headDim,
                         int intermediate, int vocab, int maxPositions, boolean tieEmbeddings, boolean attentionBias,
                         boolean mlpBias, DType dtype, WeightFormat sparsity) {

    /** Reads {@code PATH/config.json} when PATH is a folder, else PATH itself. */
    public static ModelShape read(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve("config.json") : path;
        if (!Files.isRegularFile(file)) throw new InvalidInputException(file + ": no such config.json");
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            String why = e.getMessage() == null ? e.toString() : e.getMessage().lines().findFirst().orElse("");
            throw new InvalidInputException(file + ": not valid JSON (" + why + ")", e);
        }
        if (root == null || !root.isObject()) throw new InvalidInputException(file + ": not a JSON object");
        String name = root.path("_name_or_path").asText("");
        if (name.isBlank()) {
            Path named = Files.isDirectory(path) ? path.toAbsolutePath().normalize() : file.toAbsolutePath().normalize().getParent();
            name = named == null || named.getFileName() == null ? file.toString() : named.getFileName().toString();
        }
        return parse(file, name, root);
    }

    static ModelShape parse(Path file, String name, JsonNode root) {
        Fields f = new Fields(file, root);
        String type = root.path("model_type").asText("");
        DType dtype = switch (root.path("torch_dtype").asText(root.path("dtype").asText(""))) {
            case "float32" -> DType.F32;
            case "float16" -> DType.F16;
            case "bfloat16" -> DType.BF16;
            default -> null;
        };
        WeightFormat stored = storedFormat(file, root.path("quantization_config").path("sparsity_config"));
        return switch (type) {
            case "llama", "mistral", "qwen2" -> {
                int hidden = f.positive("hidden_size");
                int heads = f.positive("num_attention_heads");
                int kvHeads = f.optPositive("num_key_value_heads", heads);
                if (heads % kvHeads != 0) {
                    throw new InvalidInputException(file + ": num_key_value_heads = " + kvHeads
                            + " must divide num_attention_heads = " + heads);
                }
                // Qwen2 has q/k/v biases and no o bias; counted here as attention biases on q, k and v only.
                boolean qkvBias = type.equals("qwen2") || root.path("attention_bias").asBoolean(false);
                yield new ModelShape(name, type, hidden, f.positive("num_hidden_layers"), heads, kvHeads,
                        f.optPositive("head_dim", hidden / heads), f.positive("intermediate_size"), f.positive("vocab_size"),
                        f.optPositive("max_position_embeddings", 2048), root.path("tie_word_embeddings").asBoolean(false),
                        qkvBias, root.path("mlp_bias").asBoolean(false), dtype, stored);
            }
            case "opt" -> {
                int hidden = f.positive("hidden_size");
                int heads = f.positive("num_attention_heads");
                if (hidden % heads != 0) {
                    throw new InvalidInputException(file + ": hidden_size = " + hidden + " is not a multiple of num_attention_heads = " + heads);
                }
                int proj = f.optPositive("word_embed_proj_dim", hidden);
                if (proj != hidden) {
                    throw new InvalidInputException(file + ": word_embed_proj_dim = " + proj + " differs from hidden_size = "
                            + hidden + " (project_in/out is not planned)");
                }
                boolean bias = root.path("enable_bias").asBoolean(true);
                yield new ModelShape(name, type, hidden, f.positive("num_hidden_layers"), heads, heads, hidden / heads,
                        f.positive("ffn_dim"), f.positive("vocab_size"), f.positive("max_position_embeddings"),
                        root.path("tie_word_embeddings").asBoolean(true), bias, bias, dtype, stored);
            }
            default -> throw new InvalidInputException(file + ": model_type '" + type
                    + "' is not planned (llama, mistral, qwen2, opt)");
        };
    }

    public boolean isOpt() {
        return family.equals("opt");
    }

    /** The linear weights of one decoder layer as [rows (out features), cols (in features)], in the layer's order. */
    public int[][] linearShapes() {
        int q = heads * headDim, kv = kvHeads * headDim;
        if (isOpt()) {
            return new int[][] {{hidden, hidden}, {hidden, hidden}, {hidden, hidden}, {hidden, hidden},
                {intermediate, hidden}, {hidden, intermediate}};
        }
        return new int[][] {{q, hidden}, {kv, hidden}, {kv, hidden}, {hidden, q},
            {intermediate, hidden}, {intermediate, hidden}, {hidden, intermediate}};
    }

    /** Elements of one decoder layer's norms and biases (always dense, in the weight dtype). */
    public long layerOtherElements() {
        int q = heads * headDim, kv = kvHeads * headDim;
        if (isOpt()) {
            long norms = 4L * hidden; // two LayerNorms, weight and bias each
            long biases = attentionBias ? 4L * hidden + intermediate + hidden : 0;
            return norms + biases;
        }
        long norms = 2L * hidden; // two RMSNorms
        long attn = attentionBias ? (long) q + 2L * kv + (family.equals("qwen2") ? 0 : hidden) : 0;
        long mlp = mlpBias ? 2L * intermediate + hidden : 0;
        return norms + attn + mlp;
    }

    /** Elements held before the first layer: token embeddings, and OPT's learned positions (offset 2). */
    public long embeddingElements() {
        long tokens = (long) vocab * hidden;
        return isOpt() ? tokens + (long) (maxPositions + 2) * hidden : tokens;
    }

    /** Elements held after the last layer: the final norm and the output head (the token embeddings when tied). */
    public long headNormElements() {
        return isOpt() ? 2L * hidden : hidden;
    }

    public long headElements() {
        return (long) vocab * hidden;
    }

    private static WeightFormat storedFormat(Path file, JsonNode sc) {
        if (sc.isMissingNode() || sc.isNull()) return null;
        String format = sc.path("format").asText("");
        String structure = sc.path("sparsity_structure").asText("");
        if (format.equals("dense")) return null;
        if (structure.matches("\\d+:\\d+")) return WeightFormat.pattern(structure);
        if (format.equals("sparse-bitmask")) return new WeightFormat.Bitmask(sc.path("global_sparsity").asDouble(0.5));
        throw new InvalidInputException(file + ": quantization_config.sparsity_config format '" + format + "' is not planned");
    }

    private record Fields(Path file, JsonNode root) {
        int positive(String name) {
            JsonNode v = root.get(name);
            if (v == null || !v.canConvertToInt() || v.asInt() <= 0) {
                throw new InvalidInputException(file + ": field '" + name + "' must be a positive integer, got " + v);
            }
            return v.asInt();
        }

        int optPositive(String name, int fallback) {
            JsonNode v = root.get(name);
            return v == null || v.isNull() ? fallback : positive(name);
        }
    }
}
