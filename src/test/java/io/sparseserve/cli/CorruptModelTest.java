package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.TestData;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Every kind of corrupt or unsupported model makes the command line exit 2 with one line naming the file and the
 * tensor or field, and no stack trace. Each case damages a copy of the tiny Llama fixture.
 */
class CorruptModelTest {
    @TempDir Path tmp;

    private Path copyFixture(String name) throws IOException {
        Path src = TestData.fixture(TestData.TINY_LLAMA), dst = tmp.resolve(name);
        Files.createDirectories(dst);
        for (String f : new String[] {"config.json", "model.safetensors", "tokenizer.json"}) Files.copy(src.resolve(f), dst.resolve(f));
        return dst;
    }

    private static void assertBadModel(Path dir, String... fragments) {
        for (String cmd : new String[] {"inspect", "eval"}) {
            String[] args = cmd.equals("eval")
                    ? new String[] {"eval", "--model", dir.toString(), "--text", TestData.testText60k().toString(), "--seq-len", "8"}
                    : new String[] {"inspect", "--model", dir.toString()};
            CliRunner r = CliRunner.run(args);
            assertEquals(2, r.exitCode(), cmd + " exit code; stderr: " + r.err());
            String err = r.err().strip();
            assertFalse(err.contains("\n"), "one line, got: " + err);
            assertFalse(err.contains("Exception") || err.contains("\tat "), "no stack trace: " + err);
            for (String f : fragments) assertTrue(err.contains(f), "'" + f + "' in: " + err);
        }
    }

    /** Rewrites the safetensors header of the copy with {@code edit}, keeping the data section. */
    private static void editHeader(Path file, Function<ObjectNode, ObjectNode> edit) throws IOException {
        byte[] all = Files.readAllBytes(file);
        long n = ByteBuffer.wrap(all, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        ObjectMapper json = new ObjectMapper();
        ObjectNode header = (ObjectNode) json.readTree(new String(all, 8, (int) n, StandardCharsets.UTF_8));
        byte[] newHeader = json.writeValueAsBytes(edit.apply(header));
        byte[] data = Arrays.copyOfRange(all, 8 + (int) n, all.length);
        ByteBuffer out = ByteBuffer.allocate(8 + newHeader.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        out.putLong(newHeader.length).put(newHeader).put(data);
        Files.write(file, out.array());
    }

    @Test
    void truncatedFile() throws IOException {
        Path dir = copyFixture("truncated");
        Path f = dir.resolve("model.safetensors");
        byte[] all = Files.readAllBytes(f);
        Files.write(f, Arrays.copyOf(all, all.length - 1000));
        assertBadModel(dir, f.toString(), "truncated");
    }

    @Test
    void headerLengthBeyondTheFile() throws IOException {
        Path dir = copyFixture("header");
        Path f = dir.resolve("model.safetensors");
        byte[] all = Files.readAllBytes(f);
        ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN).putLong(0, all.length * 2L);
        Files.write(f, all);
        assertBadModel(dir, f.toString(), "header");
    }

    @Test
    void offsetsOutOfRange() throws IOException {
        Path dir = copyFixture("offsets");
        editHeader(dir.resolve("model.safetensors"), h -> {
            ((ObjectNode) h.get("model.norm.weight")).putArray("data_offsets").add(10_000_000).add(10_000_256);
            return h;
        });
        assertBadModel(dir, "model.norm.weight", "data_offsets");
    }

    @Test
    void overlappingTensors() throws IOException {
        Path dir = copyFixture("overlap");
        editHeader(dir.resolve("model.safetensors"), h -> {
            var q = h.get("model.layers.0.self_attn.q_proj.weight").get("data_offsets");
            var norm = (ObjectNode) h.get("model.norm.weight");
            norm.putArray("data_offsets").add(q.get(0).asLong()).add(q.get(0).asLong() + 256);
            return h;
        });
        assertBadModel(dir, "model.norm.weight", "overlap");
    }

    @Test
    void unknownDtype() throws IOException {
        Path dir = copyFixture("dtype");
        editHeader(dir.resolve("model.safetensors"), h -> {
            ((ObjectNode) h.get("model.norm.weight")).put("dtype", "F8_E4M3X");
            return h;
        });
        assertBadModel(dir, "model.norm.weight", "F8_E4M3X");
    }

    @Test
    void missingTensor() throws IOException {
        Path dir = copyFixture("missing");
        editHeader(dir.resolve("model.safetensors"), h -> {
            h.remove("model.layers.1.mlp.up_proj.weight");
            return h;
        });
        assertBadModel(dir, "model.layers.1.mlp.up_proj.weight", "missing");
    }

    @Test
    void shapeThatContradictsConfig() throws IOException {
        Path dir = copyFixture("shape");
        editConfig(dir, Map.of("intermediate_size", 128));
        assertBadModel(dir, "model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[128, 64]");
    }

    @Test
    void unsupportedModelType() throws IOException {
        Path dir = copyFixture("type");
        editConfig(dir, Map.of("model_type", "mamba"));
        assertBadModel(dir, dir.resolve("config.json").toString(), "model_type", "mamba");
    }

    @Test
    void missingConfigField() throws IOException {
        Path dir = copyFixture("field");
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = (ObjectNode) json.readTree(dir.resolve("config.json").toFile());
        c.remove("num_hidden_layers");
        json.writeValue(dir.resolve("config.json").toFile(), c);
        assertBadModel(dir, "config.json", "num_hidden_layers");
    }

    @Test
    void missingFolder() {
        assertBadModel(tmp.resolve("nowhere"), "nowhere");
    }

    private static void editConfig(Path dir, Map<String, Object> fields) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = (ObjectNode) json.readTree(dir.resolve("config.json").toFile());
        fields.forEach((k, v) -> c.set(k, json.valueToTree(v)));
        json.writeValue(dir.resolve("config.json").toFile(), c);
    }
}
