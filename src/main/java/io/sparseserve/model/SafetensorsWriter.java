package io.sparseserve.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;

/**
 * Writes safetensors files in the layout the reference library produces, so any tool can load them: the header JSON
 * ({@code __metadata__} first, default {"format": "pt"} as PyTorch's {@code save_file} writes), padded with spaces to
 * a multiple of 8 bytes so the data section starts 8-byte aligned; then the tensors back to back, without gaps (the
 * reference reader rejects gaps).
 *
 * <p>Tensor bytes are streamed to the file in chunks from their segments (which may be slices of another mapped file),
 * never gathered into one heap array, so writing a model needs no more heap than one chunk.
 */
public final class SafetensorsWriter {
    /** A tensor to write: raw little-endian bytes in row-major order. */
    public record Entry(String name, DType dtype, long[] shape, MemorySegment data) {
        public Entry {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(dtype, "dtype");
            Objects.requireNonNull(data, "data");
            if (name.isEmpty() || name.equals(SafetensorsHeader.METADATA_KEY)) {
                throw new IllegalArgumentException("invalid tensor name '" + name + "'");
            }
            shape = shape.clone();
            TensorInfo.checkByteSize(name, dtype, shape, data);
        }

        @Override
        public long[] shape() {
            return shape.clone();
        }

        public static Entry of(TensorInfo t) {
            return new Entry(t.name(), t.dtype(), t.shape(), t.data());
        }
    }

    private static final int CHUNK_BYTES = 1 << 20;
    private static final JsonMapper JSON = new JsonMapper();

    private final Map<String, Entry> entries = new LinkedHashMap<>();
    private final Map<String, String> metadata = new LinkedHashMap<>(Map.of("format", "pt"));

    /** Adds a tensor; its name must be new. {@code bytes} must stay readable until {@link #write} returns. */
    public SafetensorsWriter add(String name, DType dtype, long[] shape, MemorySegment bytes) {
        return add(new Entry(name, dtype, shape, bytes));
    }

    /** Adds a tensor read from another file, under the same name. */
    public SafetensorsWriter add(TensorInfo tensor) {
        return add(Entry.of(tensor));
    }

    public SafetensorsWriter add(Entry entry) {
        if (entries.putIfAbsent(entry.name(), entry) != null) {
            throw new IllegalArgumentException("tensor '" + entry.name() + "' added twice");
        }
        return this;
    }

    /** Sets one {@code __metadata__} entry (the default is {"format": "pt"}). */
    public SafetensorsWriter metadata(String key, String value) {
        metadata.put(Objects.requireNonNull(key, "key"), Objects.requireNonNull(value, "value"));
        return this;
    }

    /** Replaces all {@code __metadata__}; an empty map omits the entry from the header. */
    public SafetensorsWriter metadata(Map<String, String> all) {
        metadata.clear();
        all.forEach(this::metadata);
        return this;
    }

    /** Bytes of tensor data added so far. */
    public long dataBytes() {
        long sum = 0;
        for (Entry e : entries.values()) sum += e.data().byteSize();
        return sum;
    }

    /** Writes all added tensors to {@code file} (atomically: a temporary file renamed into place). */
    public void write(Path file) throws IOException {
        List<Entry> layout = dataLayout();
        Map<String, long[]> offsets = new LinkedHashMap<>();
        long pos = 0;
        for (Entry e : layout) {
            offsets.put(e.name(), new long[] {pos, pos + e.data().byteSize()});
            pos += e.data().byteSize();
        }
        byte[] header = headerBytes(offsets);
        AtomicFileWrite.write(file, channel -> {
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
            AtomicFileWrite.writeFully(channel, prefix);
            AtomicFileWrite.writeFully(channel, ByteBuffer.wrap(header));
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment stage = arena.allocate(CHUNK_BYTES);
                for (Entry e : layout) copy(e.data(), stage, channel);
            }
        });
    }

    /**
     * Data order: by element size, largest first, keeping insertion order otherwise. With the data section 8-byte
     * aligned and no gaps allowed, that puts every tensor on a multiple of its element size (what the reference
     * writer does too), so readers may use aligned loads. The header keeps the order tensors were added.
     */
    private List<Entry> dataLayout() {
        List<Entry> layout = new ArrayList<>(entries.values());
        layout.sort(Comparator.comparingInt((Entry e) -> e.dtype().bytes()).reversed());
        return layout;
    }

    private byte[] headerBytes(Map<String, long[]> offsets) {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject(SafetensorsHeader.METADATA_KEY);
            metadata.forEach(meta::put);
        }
        for (Entry e : entries.values()) {
            ObjectNode t = root.putObject(e.name());
            t.put("dtype", e.dtype().name());
            ArrayNode shape = t.putArray("shape");
            for (long d : e.shape()) shape.add(d);
            long[] range = offsets.get(e.name());
            t.putArray("data_offsets").add(range[0]).add(range[1]);
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(root);
        } catch (JacksonException e) {
            throw new IllegalStateException("cannot serialize a header of plain values", e);
        }
        int padded = (json.length + 7) & ~7;
        byte[] header = Arrays.copyOf(json, padded);
        Arrays.fill(header, json.length, padded, (byte) ' ');
        return header;
    }

    private static void copy(MemorySegment src, MemorySegment stage, FileChannel channel) throws IOException {
        // Through a native staging buffer: works for heap segments of any array type and for >2 GiB tensors alike.
        ByteBuffer buffer = stage.asByteBuffer();
        for (long off = 0; off < src.byteSize(); off += CHUNK_BYTES) {
            int n = (int) Math.min(CHUNK_BYTES, src.byteSize() - off);
            MemorySegment.copy(src, off, stage, 0, n);
            AtomicFileWrite.writeFully(channel, buffer.clear().limit(n));
        }
    }

    /**
     * Writes {@code tensors} as {@code model-00001-of-0000N.safetensors} shards plus {@code model.safetensors.index.json}
     * in {@code dir}, and returns the shard paths. Tensors are packed in order, starting a new shard when the next
     * tensor would push the current one past {@code maxShardBytes} of data; a tensor larger than the limit gets a shard
     * of its own (the rule of huggingface_hub's {@code split_torch_state_dict_into_shards}). Shards are written first and
     * the index last, so an index never names a shard that is not complete.
     *
     * @throws FileAlreadyExistsException if {@code dir} holds a {@code model.safetensors}: loaders prefer it to the
     *     index, so the new shards would be silently ignored
     */
    public static List<Path> writeSharded(Path dir, List<Entry> tensors, long maxShardBytes) throws IOException {
        if (maxShardBytes <= 0) throw new IllegalArgumentException("maxShardBytes must be > 0, got " + maxShardBytes);
        Set<String> seen = new HashSet<>();
        for (Entry e : tensors) {
            if (!seen.add(e.name())) throw new IllegalArgumentException("tensor '" + e.name() + "' listed twice");
        }
        Files.createDirectories(dir);
        Path single = dir.resolve(ModelFiles.SINGLE_FILE);
        if (Files.exists(single)) {
            throw new FileAlreadyExistsException(single.toString(), null,
                    "loaders would read it instead of the shards being written");
        }

        List<List<Entry>> groups = new ArrayList<>();
        List<Entry> current = new ArrayList<>();
        long currentBytes = 0;
        for (Entry e : tensors) {
            long size = e.data().byteSize();
            if (!current.isEmpty() && currentBytes + size > maxShardBytes) {
                groups.add(current);
                current = new ArrayList<>();
                currentBytes = 0;
            }
            current.add(e);
            currentBytes += size;
        }
        groups.add(current); // also the single (empty) shard of an empty model

        List<Path> shards = new ArrayList<>();
        Map<String, String> weightMap = new LinkedHashMap<>();
        long totalSize = 0;
        for (int i = 0; i < groups.size(); i++) {
            String shardName = String.format("model-%05d-of-%05d.safetensors", i + 1, groups.size());
            SafetensorsWriter writer = new SafetensorsWriter();
            for (Entry e : groups.get(i)) {
                writer.add(e);
                weightMap.put(e.name(), shardName);
            }
            totalSize += writer.dataBytes();
            Path shard = dir.resolve(shardName);
            writer.write(shard);
            shards.add(shard);
        }
        AtomicFileWrite.write(dir.resolve(SafetensorsIndex.FILE_NAME), new SafetensorsIndex(weightMap).toJson(totalSize));
        return shards;
    }
}
