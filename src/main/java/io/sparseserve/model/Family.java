package io.sparseserve.model;

/** The model families the loader wires; each maps Hugging Face tensor names onto the shared building blocks. */
public enum Family {
    LLAMA, OPT;

    public static Family of(String modelType) {
        return switch (modelType) {
            case "llama" -> LLAMA;
            case "opt" -> OPT;
            default -> null;
        };
    }
}
