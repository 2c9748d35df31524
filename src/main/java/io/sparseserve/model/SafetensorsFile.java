package io.sparseserve.model;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A memory-mapped safetensors file: an 8-byte little-endian header length N, N bytes of JSON header, then the data
 * section. Tensors are read-only slices of the mapping, never copied to the heap, so a model larger than the Java heap
 * loads in the time it takes to parse the header and the OS pages weights in on first use.
 *
 * <p>The mapping belongs to a shared arena (kernels read weights from many threads) that {@link #close()} releases;
 * after that every {@link TensorInfo#data()} of this file throws on access instead of reading freed memory.
 */
public final class SafetensorsFile implements AutoCloseable {
    /** Same limit as the reference reader (safetensors crate, {@code MAX_HEADER_SIZE}): longer means corrupt. */
    static final long MAX_HEADER_BYTES = 100_000_000L;

    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path file;
    private final Arena arena;
    private final long fileSize;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;
    private boolean closed;

    private SafetensorsFile(Path file, Arena arena, long fileSize, Map<String, TensorInfo> tensors,
                            Map<String, String> metadata) {
        this.file = file;
        this.arena = arena;
        this.fileSize = fileSize;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Maps and validates {@code file}. Throws {@link ModelFormatException} (naming the file, and the tensor where
     * there is one) when it is missing, unreadable or not a valid safetensors file; other I/O failures are
     * {@link UncheckedIOException}s.
     */
    public static SafetensorsFile open(Path file) {
        if (Files.isDirectory(file)) throw new ModelFormatException(file, "is a folder, not a safetensors file");
        Arena arena = Arena.ofShared();
        try {
            long size;
            MemorySegment mapping;
            try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
                size = channel.size();
                if (size < 8) {
                    throw new ModelFormatException(file, "truncated: " + size + " bytes, a safetensors file needs at least 8");
                }
                // The mapping stays valid after the channel closes; it lives until the arena does.
                mapping = channel.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
            }
            return parse(file, arena, mapping, size);
        } catch (NoSuchFileException e) {
            arena.close();
            throw new ModelFormatException(file, "file not found");
        } catch (AccessDeniedException e) {
            arena.close();
            throw new ModelFormatException(file, "permission denied");
        } catch (IOException e) {
            arena.close();
            throw new UncheckedIOException("cannot map " + file + ": " + e.getMessage(), e);
        } catch (RuntimeException | Error e) {
            arena.close();
            throw e;
        }
    }

    private static SafetensorsFile parse(Path file, Arena arena, MemorySegment mapping, long size) {
        long headerLength = mapping.get(LE_LONG, 0);
        // Compare unsigned: a huge u64 is negative as a Java long.
        if (Long.compareUnsigned(headerLength, size - 8) > 0) {
            throw new ModelFormatException(file, "header length " + Long.toUnsignedString(headerLength)
                    + " (first 8 bytes) is beyond the end of the file (" + size + " bytes): truncated, or not a"
                    + " safetensors file");
        }
        if (headerLength > MAX_HEADER_BYTES) {
            throw new ModelFormatException(file, "header length " + headerLength + " is over the format's limit of "
                    + MAX_HEADER_BYTES + " bytes");
        }
        // Only the header is copied to the heap, to parse it; tensor data stays in the mapping.
        byte[] json = mapping.asSlice(8, headerLength).toArray(ValueLayout.JAVA_BYTE);
        long dataStart = 8 + headerLength;
        long dataSize = size - dataStart;
        SafetensorsHeader header = SafetensorsHeader.parse(file, json, dataSize);

        MemorySegment data = mapping.asSlice(dataStart, dataSize).asReadOnly();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (SafetensorsHeader.Entry e : header.entries().values()) {
            MemorySegment slice = data.asSlice(e.begin(), e.byteLength());
            tensors.put(e.name(), new TensorInfo(e.name(), e.dtype(), e.shape(), slice, file));
        }
        return new SafetensorsFile(file, arena, size, Collections.unmodifiableMap(tensors), header.metadata());
    }

    public Path file() {
        return file;
    }

    /** Size of the file in bytes. */
    public long fileSize() {
        return fileSize;
    }

    /** Tensors in header order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** The {@code __metadata__} entry (empty when absent), e.g. {"format": "pt"}. */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Unmaps the file; the tensors' data segments become inaccessible. Calling it again does nothing. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "SafetensorsFile[" + file + ", " + tensors.size() + " tensors]";
    }
}
