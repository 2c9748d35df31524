package io.sparseserve.model;

import static io.sparseserve.model.SafetensorsTestFiles.assertFormatError;
import static io.sparseserve.model.SafetensorsTestFiles.fixture;
import static io.sparseserve.model.SafetensorsTestFiles.tinyLlama;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Opening a model folder: single file or index + shards, and every way the folder can be incomplete. */
class ModelFilesTest {
    @TempDir
    Path tmp;

    private static SafetensorsWriter.Entry u8(String name, int n) {
        return new SafetensorsWriter.Entry(name, DType.U8, new long[] {n}, MemorySegment.ofArray(new byte[n]));
    }

    /** A two-shard model: a in shard 1, b in shard 2. */
    private Path shardedModel() throws IOException {
        Path dir = tmp.resolve("m");
        SafetensorsWriter.writeSharded(dir, List.of(u8("a", 4), u8("b", 4)), 4);
        return dir;
    }

    private static void writeIndex(Path dir, String weightMapJson) throws IOException {
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"metadata\":{\"total_size\":8},\"weight_map\":" + weightMapJson + "}");
    }

    @Test
    void opensTheSingleFileFixture() {
        Path dir = fixture("tiny-llama-f32");
        try (ModelFiles m = ModelFiles.open(dir)) {
            assertEquals(dir, m.dir());
            assertEquals(dir.resolve("model.safetensors"), m.weightsFile());
            assertEquals(21, m.names().size());
            assertTrue(m.contains("model.layers.1.mlp.up_proj.weight"));
            assertFalse(m.contains("model.layers.2.mlp.up_proj.weight"));
            TensorInfo embed = m.tensor("model.embed_tokens.weight");
            assertEquals(DType.F32, embed.dtype());
            assertArrayEquals(new long[] {4096, 64}, embed.shape());
            assertEquals(2442496, m.totalBytes(), "the whole data section of the fixture");
        }
    }

    @Test
    void opensTheF16Fixture() {
        try (ModelFiles m = ModelFiles.open(fixture("tiny-opt-f16"))) {
            assertEquals(36, m.names().size());
            assertEquals("[4096, 64]", m.tensor("model.decoder.embed_tokens.weight").shapeString());
            assertEquals(757504, m.totalBytes());
        }
    }

    @Test
    void missingTensorNamesTheWeightsFile() throws IOException {
        Path dir = fixture("tiny-llama-f32");
        try (ModelFiles m = ModelFiles.open(dir)) {
            assertFormatError(dir.resolve("model.safetensors"), () -> m.tensor("lm_head.bias"), "missing tensor 'lm_head.bias'");
        }
        Path sharded = shardedModel();
        try (ModelFiles m = ModelFiles.open(sharded)) {
            assertFormatError(sharded.resolve("model.safetensors.index.json"), () -> m.tensor("c"), "missing tensor 'c'");
        }
    }

    @Test
    void missingOrWrongFolder() throws IOException {
        Path none = tmp.resolve("no-such-model");
        assertFormatError(none, () -> ModelFiles.open(none), "model folder not found");
        Path file = Files.writeString(tmp.resolve("file.txt"), "x");
        assertFormatError(file, () -> ModelFiles.open(file), "not a folder");
    }

    @Test
    void folderWithoutWeights() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("empty"));
        assertFormatError(dir, () -> ModelFiles.open(dir), "no model.safetensors or model.safetensors.index.json");
        Files.writeString(dir.resolve("pytorch_model.bin"), "x");
        assertFormatError(dir, () -> ModelFiles.open(dir), "convert them to safetensors");
    }

    @Test
    void danglingWeightsLinkIsReportedAsThatFile() throws IOException {
        // Hugging Face cache snapshots link model.safetensors into blobs/; a lost blob must not read as "no weights".
        Path dir = Files.createDirectory(tmp.resolve("snapshot"));
        Path link = Files.createSymbolicLink(dir.resolve("model.safetensors"), tmp.resolve("blobs/gone"));
        assertFormatError(link, () -> ModelFiles.open(dir), "file not found");
    }

    @Test
    void missingShardNamesItsPath() throws IOException {
        Path dir = shardedModel();
        Path second = dir.resolve("model-00002-of-00002.safetensors");
        Files.delete(second);
        assertFormatError(second, () -> ModelFiles.open(dir), "shard missing", "tensor 'b'");
    }

    @Test
    void tensorListedInTheIndexButAbsentFromItsShard() throws IOException {
        Path dir = shardedModel();
        writeIndex(dir, "{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00001-of-00002.safetensors\"}");
        assertFormatError(dir.resolve("model-00001-of-00002.safetensors"), () -> ModelFiles.open(dir),
                "no tensor 'b'", "model.safetensors.index.json maps it to this shard");
    }

    @Test
    void corruptShardIsReportedWithTheShardPath() throws IOException {
        Path dir = shardedModel();
        Path second = dir.resolve("model-00002-of-00002.safetensors");
        Files.write(second, new byte[3]);
        assertFormatError(second, () -> ModelFiles.open(dir), "truncated: 3 bytes");
    }

    @Test
    void malformedIndex() throws IOException {
        Path dir = shardedModel();
        Path index = dir.resolve("model.safetensors.index.json");
        Files.writeString(index, "{\"weight_map\": ");
        assertFormatError(index, () -> ModelFiles.open(dir), "not valid JSON");
        Files.writeString(index, "{\"metadata\": {}}");
        assertFormatError(index, () -> ModelFiles.open(dir), "weight_map is missing or not a JSON object");
        writeIndex(dir, "{\"a\": 3}");
        assertFormatError(index, () -> ModelFiles.open(dir), "weight_map entry 'a' is not a file name");
        writeIndex(dir, "{\"a\": \"../elsewhere.safetensors\"}");
        assertFormatError(index, () -> ModelFiles.open(dir), "weight_map entry 'a' names shard '../elsewhere.safetensors'"
                + " outside the model folder");
    }

    @Test
    void singleFileWinsOverIndexLikeTransformers() throws IOException {
        Path dir = tmp.resolve("both");
        Files.createDirectories(dir);
        Files.copy(tinyLlama(), dir.resolve("model.safetensors"));
        writeIndex(dir, "{\"a\": \"missing.safetensors\"}");
        try (ModelFiles m = ModelFiles.open(dir)) {
            assertEquals(21, m.names().size());
        }
    }

    @Test
    void closeUnmapsEveryShard() throws IOException {
        ModelFiles m = ModelFiles.open(shardedModel());
        MemorySegment a = m.tensor("a").data();
        MemorySegment b = m.tensor("b").data();
        assertEquals(2, m.files().size());
        m.close();
        assertThrows(IllegalStateException.class, () -> a.get(ValueLayout.JAVA_BYTE, 0));
        assertThrows(IllegalStateException.class, () -> b.get(ValueLayout.JAVA_BYTE, 0));
    }
}
