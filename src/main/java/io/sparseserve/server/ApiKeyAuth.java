package io.sparseserve.server;

import io.sparseserve.model.InvalidInputException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Map;

/**
 * The shared API key that clients present as {@code authorization: Bearer KEY} (gRPC metadata or HTTP header, as
 * OpenAI's and vLLM's {@code --api-key} do). Compared in constant time: both sides are hashed (SHA-256) first, so
 * neither the key's length nor the position of the first wrong byte shows in the time taken, and
 * {@link MessageDigest#isEqual} then compares the digests without an early exit.
 */
public final class ApiKeyAuth {
    public static final String ENV = "SPARSE_SERVE_API_KEY";
    private static final String BEARER = "Bearer ";

    private final byte[] keyDigest;

    public ApiKeyAuth(String key) {
        if (key == null || key.isBlank()) throw new InvalidInputException("the API key must not be empty");
        if (!key.strip().equals(key) || key.chars().anyMatch(c -> c < 0x21 || c > 0x7e)) {
            throw new InvalidInputException("the API key must be printable ASCII without spaces");
        }
        this.keyDigest = sha256(key);
    }

    /**
     * The key from {@code --api-key}, else the first line of {@code --api-key-file}, else the environment variable
     * {@value #ENV}; null when none is set (no authentication).
     */
    public static ApiKeyAuth resolve(String key, Path file, Map<String, String> env) {
        if (key != null && file != null) throw new InvalidInputException("set --api-key or --api-key-file, not both");
        if (key != null) return new ApiKeyAuth(key);
        if (file != null) {
            try {
                String first = Files.readString(file, StandardCharsets.UTF_8).lines().findFirst().orElse("").strip();
                if (first.isEmpty()) throw new InvalidInputException("--api-key-file " + file + ": the first line is empty");
                return new ApiKeyAuth(first);
            } catch (IOException e) {
                throw new InvalidInputException("--api-key-file " + file + ": cannot read (" + e.getMessage() + ")");
            }
        }
        String fromEnv = env.get(ENV);
        return fromEnv == null || fromEnv.isEmpty() ? null : new ApiKeyAuth(fromEnv);
    }

    /** Whether an {@code authorization} header value carries the key. */
    public boolean accepts(String authorization) {
        if (authorization == null || !authorization.regionMatches(true, 0, BEARER, 0, BEARER.length())) return false;
        return MessageDigest.isEqual(keyDigest, sha256(authorization.substring(BEARER.length()).strip()));
    }

    private static byte[] sha256(String s) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(s.getBytes(StandardCharsets.UTF_8));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is part of every JDK", e);
        }
    }
}
