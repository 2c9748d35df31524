package io.sparseserve.backend;

import io.sparseserve.model.InvalidInputException;
import java.util.Locale;

/** How KV blocks store keys and values ({@code --kv-dtype}). */
public enum KvDtype {
    F32(4),
    BF16(2);

    private final int bytes;

    KvDtype(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The option's spelling: "f32", "bf16". */
    public String label() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses {@code --kv-dtype}; a bad value is one line naming the option. */
    public static KvDtype parse(String s) {
        for (KvDtype d : values()) if (d.label().equals(s)) return d;
        throw new InvalidInputException("--kv-dtype must be bf16 or f32, got '" + s + "'");
    }
}
