package io.sparseserve.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;

/**
 * How a checkpoint stretches its rotary frequencies beyond the context it was trained on, as transformers'
 * {@code modeling_rope_utils} computes them ({@code _compute_linear_scaling_rope_parameters},
 * {@code _compute_llama3_parameters}). Only types whose attention scaling is 1 are here: the forward pass needs no
 * other change for them.
 *
 * @param type none ({@code default}), linear or llama3
 * @param factor every inverse frequency is divided by it (linear), or the low ones are (llama3)
 * @param lowFreqFactor llama3: wavelengths longer than original/lowFreqFactor are divided by factor
 * @param highFreqFactor llama3: wavelengths shorter than original/highFreqFactor are kept
 * @param originalMaxPositions llama3: the context the model was pre-trained with
 */
public record RopeScaling(Type type, double factor, double lowFreqFactor, double highFreqFactor, int originalMaxPositions) {

    public enum Type { NONE, LINEAR, LLAMA3 }

    public static final RopeScaling NONE = new RopeScaling(Type.NONE, 1, 1, 1, 0);

    /**
     * Reads {@code rope_scaling} (transformers 4.x) or, when absent, {@code rope_parameters} (5.x, which also carries
     * {@code rope_theta}); the type is {@code rope_type}, or the older {@code type}. An unknown type is refused with
     * one line naming it.
     */
    static RopeScaling parse(Path file, JsonNode root) {
        JsonNode n = root.hasNonNull("rope_scaling") ? root.get("rope_scaling") : root.path("rope_parameters");
        String field = root.hasNonNull("rope_scaling") ? "rope_scaling" : "rope_parameters";
        if (n.isMissingNode() || n.isNull()) return NONE;
        if (!n.isObject()) throw new ModelFormatException(file, "field '" + field + "' must be an object, got " + n);
        JsonNode typeNode = n.hasNonNull("rope_type") ? n.get("rope_type") : n.path("type");
        if (typeNode.isMissingNode() && field.equals("rope_parameters") && !n.has("rope_theta")) {
            throw new ModelFormatException(file, "field 'rope_parameters' holds per-layer-type parameters "
                    + n.properties().iterator().next().getKey() + "..., which are not supported");
        }
        String type = typeNode.asText("default");
        return switch (type) {
            case "default" -> NONE;
            case "linear" -> new RopeScaling(Type.LINEAR, factor(file, field, n), 1, 1, 0);
            case "llama3" -> {
                double factor = factor(file, field, n);
                double low = positive(file, field, n, "low_freq_factor");
                double high = positive(file, field, n, "high_freq_factor");
                if (!(high > low)) {
                    throw new ModelFormatException(file, "field '" + field + ".high_freq_factor' = " + high
                            + " must be greater than low_freq_factor = " + low);
                }
                double original = positive(file, field, n, "original_max_position_embeddings");
                yield new RopeScaling(Type.LLAMA3, factor, low, high, (int) original);
            }
            default -> throw new ModelFormatException(file, "field '" + field + "' has rope type '" + type
                    + "', which is not supported (supported: default, linear, llama3)");
        };
    }

    /** The theta of the rotary frequencies: {@code rope_theta}, else {@code rope_parameters.rope_theta}, else 10000. */
    static double theta(JsonNode root) {
        if (root.hasNonNull("rope_theta")) return root.get("rope_theta").asDouble();
        return root.path("rope_parameters").path("rope_theta").asDouble(10000.0);
    }

    /** The inverse frequency of one rotary pair after scaling; {@code invFreq} = theta^(-2i/dim). */
    public double scale(double invFreq) {
        return switch (type) {
            case NONE -> invFreq;
            case LINEAR -> invFreq / factor;
            case LLAMA3 -> {
                // _compute_llama3_parameters: long wavelengths slowed by factor, short ones kept, a linear blend between.
                double lowFreqWavelen = originalMaxPositions / lowFreqFactor;
                double highFreqWavelen = originalMaxPositions / highFreqFactor;
                double wavelen = 2 * Math.PI / invFreq;
                if (wavelen > lowFreqWavelen) yield invFreq / factor;
                if (wavelen < highFreqWavelen) yield invFreq;
                double smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                yield (1 - smooth) * invFreq / factor + smooth * invFreq;
            }
        };
    }

    private static double factor(Path file, String field, JsonNode n) {
        return positive(file, field, n, "factor");
    }

    private static double positive(Path file, String field, JsonNode n, String name) {
        JsonNode v = n.get(name);
        if (v == null || !v.isNumber() || !(v.asDouble() > 0) || Double.isInfinite(v.asDouble())) {
            throw new ModelFormatException(file, "field '" + field + "." + name + "' must be a positive number, got " + v);
        }
        return v.asDouble();
    }
}
