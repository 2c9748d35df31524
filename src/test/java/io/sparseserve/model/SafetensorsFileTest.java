package io.sparseserve.model;

import static io.sparseserve.model.SafetensorsTestFiles.assertFormatError;
import static io.sparseserve.model.SafetensorsTestFiles.tinyLlama;
import static io.sparseserve.model.SafetensorsTestFiles.tinyOpt;
import static io.sparseserve.model.SafetensorsTestFiles.writeRaw;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading valid safetensors files: the shared fixtures and hand-made edge cases. */
class SafetensorsFileTest {
    @TempDir
    Path tmp;

    @Test
    void readsTinyLlamaF32Fixture() {
        try (SafetensorsFile f = SafetensorsFile.open(tinyLlama())) {
            Map<String, TensorInfo> tensors = f.tensors();
            assertEquals(21, tensors.size());
            assertEquals("lm_head.weight", tensors.keySet().iterator().next(), "header order is kept");
            assertEquals(Map.of("format", "pt"), f.metadata());

            TensorInfo embed = tensors.get("model.embed_tokens.weight");
            assertEquals(DType.F32, embed.dtype());
            assertArrayEquals(new long[] {4096, 64}, embed.shape());
            assertEquals(4096 * 64, embed.numel());
            assertEquals(4096 * 64 * 4, embed.byteSize());
            assertEquals(tinyLlama(), embed.file());
            // First values as numpy reads them from the same file.
            assertEquals(-0.12204767018556595f, DTypeConvert.getFloat(embed.data(), DType.F32, 0));
            assertEquals(-0.060018543154001236f, DTypeConvert.getFloat(embed.data(), DType.F32, 1));
            assertEquals(-0.052318472415208817f, DTypeConvert.getFloat(embed.data(), DType.F32, 2));

            TensorInfo down = tensors.get("model.layers.0.mlp.down_proj.weight");
            assertEquals("[64, 160]", down.shapeString());
            assertEquals(64, down.dim(0));
            assertEquals(160, down.dim(1));
            assertEquals(2, down.rank());
            assertEquals("[32, 64]", tensors.get("model.layers.1.self_attn.k_proj.weight").shapeString());
            assertEquals("[64]", tensors.get("model.norm.weight").shapeString());
        }
    }

    @Test
    void readsTinyOptF16Fixture() {
        try (SafetensorsFile f = SafetensorsFile.open(tinyOpt())) {
            assertEquals(36, f.tensors().size());
            TensorInfo pos = f.tensors().get("model.decoder.embed_positions.weight");
            assertEquals(DType.F16, pos.dtype());
            assertEquals("[258, 64]", pos.shapeString());
            assertEquals(258 * 64 * 2, pos.byteSize());
            // Raw little-endian bytes 37 2d 88 ad fa 24 at the start of the data section.
            MemorySegment d = pos.data();
            assertEquals((short) 0x2d37, d.getAtIndex(DTypeConvert.LE_SHORT, 0));
            assertEquals(0.08148193359375f, DTypeConvert.getFloat(d, DType.F16, 0));
            assertEquals(-0.08642578125f, DTypeConvert.getFloat(d, DType.F16, 1));
            assertEquals(0.019439697265625f, DTypeConvert.getFloat(d, DType.F16, 2));
            for (TensorInfo t : f.tensors().values()) assertEquals(DType.F16, t.dtype(), t.name());
        }
    }

    @Test
    void dataIsAReadOnlySliceOfTheMappingNotACopy() {
        try (SafetensorsFile f = SafetensorsFile.open(tinyLlama())) {
            TensorInfo head = f.tensors().get("lm_head.weight");
            TensorInfo embed = f.tensors().get("model.embed_tokens.weight");
            for (TensorInfo t : List.of(head, embed)) {
                assertTrue(t.data().isReadOnly(), t.name());
                assertTrue(t.data().isNative(), t.name());
                assertTrue(t.data().isMapped(), t.name());
            }
            // Adjacent in the file (data_offsets [0, 1048576] and [1048576, ...]), adjacent in memory.
            assertEquals(1048576, embed.data().address() - head.data().address());
            assertThrows(IllegalArgumentException.class,
                    () -> head.data().set(ValueLayout.JAVA_BYTE, 0, (byte) 1));
        }
    }

    @Test
    void closeUnmapsTheTensorsAndIsIdempotent() {
        SafetensorsFile f = SafetensorsFile.open(tinyLlama());
        MemorySegment data = f.tensors().get("model.norm.weight").data();
        assertDoesNotThrow(() -> data.get(ValueLayout.JAVA_BYTE, 0));
        f.close();
        assertThrows(IllegalStateException.class, () -> data.get(ValueLayout.JAVA_BYTE, 0));
        assertDoesNotThrow(f::close);
    }

    @Test
    void f16FixtureConvertsToF32ElementByElement() {
        try (SafetensorsFile f = SafetensorsFile.open(tinyOpt()); Arena arena = Arena.ofConfined()) {
            TensorInfo w = f.tensors().get("model.decoder.layers.0.fc1.weight");
            MemorySegment f32 = DTypeConvert.convert(w.data(), DType.F16, DType.F32, arena);
            assertEquals(w.numel() * 4, f32.byteSize());
            for (long i = 0; i < w.numel(); i++) {
                short h = w.data().getAtIndex(DTypeConvert.LE_SHORT, i);
                assertEquals(Float.float16ToFloat(h), f32.getAtIndex(DTypeConvert.LE_FLOAT, i));
            }
        }
    }

    @Test
    void zeroElementAndScalarTensorsAreAllowed() throws IOException {
        // An empty tensor may sit at the same offset as the next one: it occupies no bytes.
        Path file = writeRaw(tmp.resolve("edge.safetensors"), """
                {"empty":{"dtype":"F32","shape":[0,64],"data_offsets":[0,0]},\
                "scalar":{"dtype":"I64","shape":[],"data_offsets":[0,8]},\
                "none":{"dtype":"BF16","shape":[3,0],"data_offsets":[8,8]}}""", 8);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            assertEquals(List.of("empty", "scalar", "none"), List.copyOf(f.tensors().keySet()));
            assertEquals(0, f.tensors().get("empty").numel());
            assertEquals(0, f.tensors().get("empty").byteSize());
            assertEquals("[0, 64]", f.tensors().get("empty").shapeString());
            assertEquals(1, f.tensors().get("scalar").numel());
            assertEquals("[]", f.tensors().get("scalar").shapeString());
            assertEquals(Map.of(), f.metadata(), "no __metadata__ means empty metadata");
        }
    }

    @Test
    void headerLengthNeedNotBeAMultipleOf8() throws IOException {
        // The format allows any header length; the data then starts unaligned and must still read correctly.
        String json = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        assertTrue((8 + json.length()) % 4 != 0, "test needs an unaligned data section");
        byte[] data = new byte[8];
        MemorySegment.ofArray(data).setAtIndex(DTypeConvert.LE_FLOAT, 0, 1.5f);
        MemorySegment.ofArray(data).setAtIndex(DTypeConvert.LE_FLOAT, 1, -2.25f);
        Path file = writeRaw(tmp.resolve("odd.safetensors"), json.length(), json.getBytes(), data);
        try (SafetensorsFile f = SafetensorsFile.open(file)) {
            MemorySegment x = f.tensors().get("x").data();
            assertEquals(1.5f, DTypeConvert.getFloat(x, DType.F32, 0));
            assertEquals(-2.25f, DTypeConvert.getFloat(x, DType.F32, 1));
        }
    }

    @Test
    void missingFileIsAFormatErrorNamingIt() {
        Path file = tmp.resolve("nope.safetensors");
        assertFormatError(file, () -> SafetensorsFile.open(file), "file not found");
        assertFormatError(tmp, () -> SafetensorsFile.open(tmp), "is a folder");
    }
}
