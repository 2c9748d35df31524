package io.sparseserve.tensor;

/** Element types of stored tensors, named as in the safetensors header. */
public enum DType {
    F32(4), F16(2), BF16(2), F64(8), I64(8), I32(4), I16(2), I8(1), U8(1), BOOL(1);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** True for the three dtypes weights may be stored (and computed) in. */
    public boolean isWeightType() {
        return this == F32 || this == F16 || this == BF16;
    }

    /** Parses a safetensors dtype name; null when unknown. */
    public static DType fromSafetensors(String name) {
        for (DType d : values()) {
            if (d.name().equals(name)) return d;
        }
        return null;
    }

    /** Parses a user-facing name such as "bf16" or "float32". */
    public static DType parse(String name) {
        return switch (name.toLowerCase(java.util.Locale.ROOT)) {
            case "f32", "fp32", "float32", "float" -> F32;
            case "f16", "fp16", "float16", "half" -> F16;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException("unknown dtype '" + name + "' (allowed: f32, f16, bf16)");
        };
    }
}
