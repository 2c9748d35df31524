package io.sparseserve.model;

import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The weights of a Hugging Face model folder, as one name-to-tensor map over either {@code model.safetensors} or the
 * shards listed in {@code model.safetensors.index.json}. Everything is mapped and checked at {@link #open}, so a
 * missing shard or a tensor absent from its shard is reported before any work starts, not halfway through a load.
 */
public final class ModelFiles implements AutoCloseable {
    public static final String SINGLE_FILE = "model.safetensors";

    private final Path dir;
    private final Path weightsFile;
    private final List<SafetensorsFile> files;
    private final Map<String, TensorInfo> tensors;
    private final long totalBytes;

    private ModelFiles(Path dir, Path weightsFile, List<SafetensorsFile> files, Map<String, TensorInfo> tensors) {
        this.dir = dir;
        this.weightsFile = weightsFile;
        this.files = List.copyOf(files);
        this.tensors = Collections.unmodifiableMap(tensors);
        long sum = 0;
        for (TensorInfo t : tensors.values()) sum += t.byteSize();
        this.totalBytes = sum;
    }

    /**
     * Opens the weights of {@code dir}. Like transformers ({@code modeling_utils}, which looks for
     * {@code model.safetensors} before the index), a single file wins when both are present.
     */
    public static ModelFiles open(Path dir) {
        if (!Files.exists(dir)) throw new ModelFormatException(dir, "model folder not found");
        if (!Files.isDirectory(dir)) throw new ModelFormatException(dir, "not a folder (expected a model folder)");
        Path single = dir.resolve(SINGLE_FILE);
        // NOFOLLOW: a dangling symlink (Hugging Face cache snapshots are links into blobs/) is a broken weights file,
        // to report as such, not an absent one.
        if (Files.exists(single, LinkOption.NOFOLLOW_LINKS)) {
            SafetensorsFile file = SafetensorsFile.open(single);
            return new ModelFiles(dir, single, List.of(file), new LinkedHashMap<>(file.tensors()));
        }
        Path index = dir.resolve(SafetensorsIndex.FILE_NAME);
        if (Files.exists(index)) return openSharded(dir, index);
        String hint = Files.exists(dir.resolve("pytorch_model.bin"))
                || Files.exists(dir.resolve("pytorch_model.bin.index.json"))
                ? "; found PyTorch .bin weights, convert them to safetensors first" : "";
        throw new ModelFormatException(dir, "no " + SINGLE_FILE + " or " + SafetensorsIndex.FILE_NAME + hint);
    }

    private static ModelFiles openSharded(Path dir, Path indexFile) {
        SafetensorsIndex index = SafetensorsIndex.read(indexFile);
        Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
        try {
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            for (Map.Entry<String, String> e : index.weightMap().entrySet()) {
                String name = e.getKey();
                SafetensorsFile shard = shards.get(e.getValue());
                if (shard == null) {
                    Path path = SafetensorsIndex.shardPath(dir, e.getValue());
                    if (!Files.exists(path)) {
                        throw new ModelFormatException(path, "shard missing (" + SafetensorsIndex.FILE_NAME
                                + " maps tensor '" + name + "' to it)");
                    }
                    shard = SafetensorsFile.open(path);
                    shards.put(e.getValue(), shard);
                }
                TensorInfo t = shard.tensors().get(name);
                if (t == null) {
                    throw new ModelFormatException(shard.file(), "no tensor '" + name + "', though "
                            + SafetensorsIndex.FILE_NAME + " maps it to this shard");
                }
                tensors.put(name, t);
            }
            return new ModelFiles(dir, indexFile, new ArrayList<>(shards.values()), tensors);
        } catch (RuntimeException e) {
            shards.values().forEach(SafetensorsFile::close);
            throw e;
        }
    }

    public Path dir() {
        return dir;
    }

    /** {@code model.safetensors}, or the index file of a sharded model: where a tensor name is looked up. */
    public Path weightsFile() {
        return weightsFile;
    }

    /** The mapped files, in the order they were first needed. */
    public List<SafetensorsFile> files() {
        return files;
    }

    public boolean contains(String name) {
        return tensors.containsKey(name);
    }

    /** The tensor called {@code name}; a {@link ModelFormatException} naming the weights file when there is none. */
    public TensorInfo tensor(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) throw new ModelFormatException(weightsFile, "missing tensor '" + name + "'");
        return t;
    }

    /** Tensor names in file (or index) order. */
    public Set<String> names() {
        return tensors.keySet();
    }

    /** All tensors, in file (or index) order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** Total bytes of all tensors' data (headers excluded). */
    public long totalBytes() {
        return totalBytes;
    }

    /** Unmaps every file; the tensors become inaccessible. */
    @Override
    public void close() {
        files.forEach(SafetensorsFile::close);
    }
}
