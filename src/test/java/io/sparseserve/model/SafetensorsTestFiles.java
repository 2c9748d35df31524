package io.sparseserve.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.function.Executable;

/** Shared fixtures and hand-made files for the safetensors tests (raw bytes, so headers can be as broken as needed). */
final class SafetensorsTestFiles {
    private SafetensorsTestFiles() {}

    /** A fixture folder as copied into the repository's test resources. */
    static Path fixture(String name) {
        return io.sparseserve.TestData.fixture(name);
    }

    static Path tinyLlama() {
        return fixture("tiny-llama-f32").resolve("model.safetensors");
    }

    static Path tinyOpt() {
        return fixture("tiny-opt-f16").resolve("model.safetensors");
    }

    /** Writes a safetensors file from a header JSON text (unpadded) and {@code dataBytes} random data bytes. */
    static Path writeRaw(Path file, String headerJson, int dataBytes) throws IOException {
        byte[] header = headerJson.getBytes(StandardCharsets.UTF_8);
        return writeRaw(file, header.length, header, randomBytes(dataBytes, 7));
    }

    /** Writes the 8-byte length prefix {@code headerLength} (which may lie), then {@code header} and {@code data}. */
    static Path writeRaw(Path file, long headerLength, byte[] header, byte[] data) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 + header.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(headerLength).put(header).put(data);
        Files.write(file, b.array());
        return file;
    }

    static byte[] randomBytes(int n, long seed) {
        byte[] bytes = new byte[n];
        new Random(seed).nextBytes(bytes);
        return bytes;
    }

    /**
     * Asserts {@code action} throws a ModelFormatException whose message starts with {@code file}, contains every
     * fragment, and is one line (the CLI prints it as one line).
     */
    static ModelFormatException assertFormatError(Path file, Executable action, String... fragments) {
        ModelFormatException e = assertThrows(ModelFormatException.class, action);
        String message = e.getMessage();
        assertTrue(message.startsWith(file + ": "), () -> "message should name " + file + ": " + message);
        for (String fragment : fragments) {
            assertTrue(message.contains(fragment), () -> "message should contain '" + fragment + "': " + message);
        }
        assertFalse(message.contains("\n"), () -> "message should be one line: " + message);
        assertEquals(-1, message.indexOf('\r'));
        return e;
    }
}
