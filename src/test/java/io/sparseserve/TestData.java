package io.sparseserve;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/** Where the tests' real inputs live: fixtures copied into the repository, the bundled model, and ../shared. */
public final class TestData {
    private TestData() {}

    public static final String TINY_LLAMA = "tiny-llama-f32";
    public static final String TINY_OPT = "tiny-opt-f16";
    /** Llama 3.x style: llama3 rope scaling, BOS post-processor, chat template, generation_config stop ids (BF16). */
    public static final String TINY_LLAMA3 = "tiny-llama3-bf16";
    /** Qwen2: q/k/v biases, padded vocabulary, ChatML template, no BOS (F32). */
    public static final String TINY_QWEN2 = "tiny-qwen2-f32";

    /** A fixture model folder copied from ../shared/fixtures into the test resources. */
    public static Path fixture(String name) {
        Path dir = Path.of("src/test/resources/fixtures", name);
        assertTrue(Files.isDirectory(dir), "fixture folder missing: " + dir.toAbsolutePath());
        return dir;
    }

    /** The bundled default model (a copy of ../shared/models/kdoc-llama-5m). */
    public static Path bundledModel() {
        Path dir = Path.of("models/kdoc-llama-5m");
        assertTrue(Files.isDirectory(dir), "bundled model missing: " + dir.toAbsolutePath());
        return dir;
    }

    /** The first 60,000 characters of ../shared/data/kdoc/test.txt, the text of the fixtures' reference numbers. */
    public static Path testText60k() {
        return Path.of("src/test/resources/data/kdoc-test-60k.txt");
    }

    /** ../shared (set by surefire as sparseserve.shared), when present. */
    public static Optional<Path> shared() {
        Path p = Path.of(System.getProperty("sparseserve.shared", "../shared"));
        return Files.isDirectory(p) ? Optional.of(p) : Optional.empty();
    }

    public static JsonNode reference(String fixture) {
        return json(fixture(fixture).resolve("reference.json"));
    }

    public static JsonNode json(Path file) {
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static JsonNode jsonText(String text) {
        try {
            return new ObjectMapper().readTree(text);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asInt();
        return out;
    }
}
