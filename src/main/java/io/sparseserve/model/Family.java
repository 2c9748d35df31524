package io.sparseserve.model;

/**
 * The model families the loader wires; each maps Hugging Face tensor names onto the shared building blocks. Mistral
 * and Qwen2 checkpoints use Llama's names and blocks (their differences are in {@link ModelConfig}).
 */
public enum Family {
    LLAMA, OPT;

    public static Family of(String modelType) {
        return switch (modelType) {
            case "llama", "mistral", "qwen2" -> LLAMA;
            case "opt" -> OPT;
            default -> null;
        };
    }
}
