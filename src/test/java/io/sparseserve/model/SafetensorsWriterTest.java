package io.sparseserve.model;

import static io.sparseserve.model.SafetensorsTestFiles.randomBytes;
import static io.sparseserve.model.SafetensorsTestFiles.tinyLlama;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writing safetensors files (single and sharded) and reading them back with our own reader. */
class SafetensorsWriterTest {
    @TempDir
    Path tmp;

    private static long headerLength(Path file) throws IOException {
        byte[] prefix = new byte[8];
        try (var in = Files.newInputStream(file)) {
            assertEquals(8, in.readNBytes(prefix, 0, 8));
        }
        return ByteBuffer.wrap(prefix).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }

    private static List<String> listNames(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void roundTripsTheLlamaFixtureByteForByte() throws IOException {
        Path out = tmp.resolve("model.safetensors");
        try (SafetensorsFile src = SafetensorsFile.open(tinyLlama())) {
            SafetensorsWriter w = new SafetensorsWriter();
            src.tensors().values().forEach(w::add); // straight from the source mapping
            w.write(out);
            try (SafetensorsFile back = SafetensorsFile.open(out)) {
                assertEquals(List.copyOf(src.tensors().keySet()), List.copyOf(back.tensors().keySet()));
                assertEquals(Map.of("format", "pt"), back.metadata());
                for (TensorInfo a : src.tensors().values()) {
                    TensorInfo b = back.tensors().get(a.name());
                    assertEquals(a.dtype(), b.dtype(), a.name());
                    assertArrayEquals(a.shape(), b.shape(), a.name());
                    assertEquals(-1, a.data().mismatch(b.data()), a.name());
                }
            }
        }
        long n = headerLength(out);
        assertEquals(0, (8 + n) % 8, "header padded so the data section is 8-byte aligned");
        assertEquals(Files.size(tinyLlama()) - 2184 + n, Files.size(out), "same data section size, no gaps");
        assertEquals(List.of("model.safetensors"), listNames(tmp), "no temporary file left behind");
    }

    @Test
    void mixedDtypesAreLaidOutContiguouslyAndAligned() throws IOException {
        Random r = new Random(5);
        record Spec(String name, DType dtype, long[] shape) {}
        List<Spec> specs = List.of(
                new Spec("bytes", DType.U8, new long[] {3}),
                new Spec("weights", DType.F32, new long[] {5, 3}),
                new Spec("half", DType.F16, new long[] {7}),
                new Spec("ids", DType.I64, new long[] {2}),
                new Spec("empty", DType.BF16, new long[] {0, 4}),
                new Spec("scalar", DType.F64, new long[] {}),
                new Spec("mask", DType.BOOL, new long[] {1, 1, 5}));
        SafetensorsWriter w = new SafetensorsWriter();
        List<byte[]> contents = new ArrayList<>();
        for (Spec s : specs) {
            byte[] bytes = randomBytes((int) (TensorInfo.numel(s.shape()) * s.dtype().bytes()), r.nextLong());
            contents.add(bytes);
            w.add(s.name(), s.dtype(), s.shape(), MemorySegment.ofArray(bytes));
        }
        Path out = tmp.resolve("mixed.safetensors");
        w.write(out);

        long dataStart = 8 + headerLength(out);
        assertEquals(0, dataStart % 8);
        try (SafetensorsFile f = SafetensorsFile.open(out)) {
            assertEquals(specs.stream().map(Spec::name).toList(), List.copyOf(f.tensors().keySet()),
                    "header keeps insertion order");
            long base = f.tensors().values().stream().mapToLong(t -> t.data().address()).min().orElseThrow();
            long sum = 0;
            for (int i = 0; i < specs.size(); i++) {
                TensorInfo t = f.tensors().get(specs.get(i).name());
                assertEquals(specs.get(i).dtype(), t.dtype());
                assertArrayEquals(specs.get(i).shape(), t.shape());
                assertEquals(-1, t.data().mismatch(MemorySegment.ofArray(contents.get(i))), t.name());
                assertEquals(0, (t.data().address() - base) % t.dtype().bytes(), t.name() + " aligned to its dtype");
                sum += t.byteSize();
            }
            assertEquals(dataStart + sum, Files.size(out), "tensors back to back, nothing else");
            // Contiguous: sorted by position, each tensor starts where the previous one ended.
            List<TensorInfo> byPos = new ArrayList<>(f.tensors().values());
            // (an empty tensor shares its address with the next one, so it sorts first)
            byPos.sort(Comparator.comparingLong((TensorInfo t) -> t.data().address()).thenComparingLong(TensorInfo::byteSize));
            for (int i = 1; i < byPos.size(); i++) {
                TensorInfo prev = byPos.get(i - 1);
                assertEquals(prev.data().address() + prev.byteSize(), byPos.get(i).data().address());
            }
        }
    }

    @Test
    void writesHeapSegmentsOfAnyArrayTypeAndTensorsLargerThanOneChunk() throws IOException {
        float[] values = new float[(3 << 20) / 4 + 5]; // just over 3 MiB: several 1 MiB chunks plus a tail
        Random r = new Random(6);
        for (int i = 0; i < values.length; i++) values[i] = (float) r.nextGaussian();
        Path out = tmp.resolve("big.safetensors");
        // A float[] segment is in native order; this test (like the format) assumes a little-endian machine.
        assertEquals(ByteOrder.LITTLE_ENDIAN, ByteOrder.nativeOrder());
        new SafetensorsWriter().add("big", DType.F32, new long[] {values.length}, MemorySegment.ofArray(values)).write(out);
        try (SafetensorsFile f = SafetensorsFile.open(out)) {
            MemorySegment data = f.tensors().get("big").data();
            for (int i = 0; i < values.length; i++) assertEquals(values[i], DTypeConvert.getFloat(data, DType.F32, i));
        }
    }

    @Test
    void metadataCanBeSetOrOmitted() throws IOException {
        Path custom = tmp.resolve("custom.safetensors");
        new SafetensorsWriter().metadata("producer", "sparse-serve").write(custom);
        try (SafetensorsFile f = SafetensorsFile.open(custom)) {
            assertEquals(Map.of("format", "pt", "producer", "sparse-serve"), f.metadata());
            assertEquals(0, f.tensors().size());
        }
        Path none = tmp.resolve("none.safetensors");
        new SafetensorsWriter().metadata(Map.of()).add("x", DType.U8, new long[] {1}, MemorySegment.ofArray(new byte[1]))
                .write(none);
        assertTrue(!Files.readString(none, java.nio.charset.StandardCharsets.ISO_8859_1).contains("__metadata__"));
        try (SafetensorsFile f = SafetensorsFile.open(none)) {
            assertEquals(Map.of(), f.metadata());
        }
    }

    @Test
    void overwritingAMappedFileLeavesTheOldMappingIntact() throws IOException {
        Path out = tmp.resolve("model.safetensors");
        byte[] first = {1, 2, 3, 4};
        new SafetensorsWriter().add("x", DType.U8, new long[] {4}, MemorySegment.ofArray(first)).write(out);
        try (SafetensorsFile old = SafetensorsFile.open(out)) {
            // Re-save the file from its own mapping, with the bytes changed: the rename replaces it atomically.
            byte[] second = {9, 8, 7, 6};
            new SafetensorsWriter().add("x", DType.U8, new long[] {4}, MemorySegment.ofArray(second)).write(out);
            assertEquals(-1, old.tensors().get("x").data().mismatch(MemorySegment.ofArray(first)));
            try (SafetensorsFile now = SafetensorsFile.open(out)) {
                assertEquals(-1, now.tensors().get("x").data().mismatch(MemorySegment.ofArray(second)));
            }
        }
        assertEquals(List.of("model.safetensors"), listNames(tmp));
    }

    @Test
    void rejectsInconsistentTensors() {
        SafetensorsWriter w = new SafetensorsWriter();
        MemorySegment four = MemorySegment.ofArray(new byte[4]);
        assertThrows(IllegalArgumentException.class, () -> w.add("x", DType.F32, new long[] {2}, four), "8 bytes needed");
        assertThrows(IllegalArgumentException.class, () -> w.add("__metadata__", DType.U8, new long[] {4}, four));
        assertThrows(IllegalArgumentException.class, () -> w.add("", DType.U8, new long[] {4}, four));
        assertThrows(IllegalArgumentException.class, () -> w.add("x", DType.U8, new long[] {-4}, four));
        w.add("x", DType.F32, new long[] {1}, four);
        assertThrows(IllegalArgumentException.class, () -> w.add("x", DType.F32, new long[] {1}, four), "twice");
    }

    @Test
    void writeShardedSplitsByBytesAndModelFilesReadsItBack() throws IOException {
        Path dir = tmp.resolve("sharded");
        try (SafetensorsFile src = SafetensorsFile.open(tinyLlama())) {
            List<SafetensorsWriter.Entry> entries = src.tensors().values().stream().map(SafetensorsWriter.Entry::of).toList();
            long max = 300_000;
            List<Path> shards = SafetensorsWriter.writeSharded(dir, entries, max);

            // lm_head and embed_tokens (1 MiB each, over the limit) get a shard each; the 20 small ones fill the rest.
            assertTrue(shards.size() > 3, "shards: " + shards);
            int n = shards.size();
            for (int i = 0; i < n; i++) {
                assertEquals(String.format("model-%05d-of-%05d.safetensors", i + 1, n), shards.get(i).getFileName().toString());
                try (SafetensorsFile shard = SafetensorsFile.open(shards.get(i))) {
                    long bytes = shard.tensors().values().stream().mapToLong(TensorInfo::byteSize).sum();
                    assertTrue(bytes <= max || shard.tensors().size() == 1, shards.get(i) + " holds " + bytes);
                }
            }

            JsonNode index = new JsonMapper().readTree(dir.resolve("model.safetensors.index.json").toFile());
            long total = src.tensors().values().stream().mapToLong(TensorInfo::byteSize).sum();
            assertEquals(total, index.get("metadata").get("total_size").longValue());
            assertEquals("model-00001-of-0000" + n + ".safetensors", index.get("weight_map").get("lm_head.weight").asText());
            assertEquals(src.tensors().size(), index.get("weight_map").size());

            try (ModelFiles model = ModelFiles.open(dir)) {
                assertEquals(List.copyOf(src.tensors().keySet()), List.copyOf(model.names()));
                assertEquals(total, model.totalBytes());
                assertEquals(dir.resolve("model.safetensors.index.json"), model.weightsFile());
                assertEquals(n, model.files().size());
                for (TensorInfo a : src.tensors().values()) {
                    TensorInfo b = model.tensor(a.name());
                    assertEquals(a.dtype(), b.dtype());
                    assertArrayEquals(a.shape(), b.shape());
                    assertEquals(-1, a.data().mismatch(b.data()), a.name());
                }
            }
        }
        try (Stream<Path> s = Files.list(dir)) {
            assertTrue(s.noneMatch(p -> p.getFileName().toString().endsWith(".tmp")), "no temporary files left");
        }
    }

    @Test
    void writeShardedRefusesAFolderHoldingModelSafetensors() throws IOException {
        // Loaders read model.safetensors before the index, so new shards next to it would be silently ignored.
        Files.writeString(tmp.resolve("model.safetensors"), "old");
        List<SafetensorsWriter.Entry> one = List.of(
                new SafetensorsWriter.Entry("x", DType.U8, new long[] {1}, MemorySegment.ofArray(new byte[1])));
        assertThrows(FileAlreadyExistsException.class, () -> SafetensorsWriter.writeSharded(tmp, one, 100));
        assertThrows(IllegalArgumentException.class, () -> SafetensorsWriter.writeSharded(tmp.resolve("d"), one, 0));
    }
}
