package io.sparseserve.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.json.JsonMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * {@code model.safetensors.index.json}, the table of contents of a sharded Hugging Face checkpoint:
 * {@code {"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file name}}} (as written by
 * transformers' {@code save_pretrained} / huggingface_hub's {@code split_torch_state_dict_into_shards}).
 * Shard names are relative to the model folder.
 */
public record SafetensorsIndex(Map<String, String> weightMap) {
    public static final String FILE_NAME = "model.safetensors.index.json";

    private static final JsonMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(SerializationFeature.INDENT_OUTPUT)
            .build();

    public SafetensorsIndex {
        weightMap = Collections.unmodifiableMap(new LinkedHashMap<>(weightMap));
    }

    /**
     * Reads an index file; throws {@link ModelFormatException} naming it when it is missing or malformed, or when a
     * shard name points outside {@code indexFile}'s folder (an index must not make us open arbitrary files).
     */
    public static SafetensorsIndex read(Path indexFile) {
        JsonNode root;
        try {
            root = JSON.readTree(Files.readAllBytes(indexFile));
        } catch (JacksonException e) {
            throw new ModelFormatException(indexFile, "not valid JSON: "
                    + e.getOriginalMessage().replaceAll("\\s*[\\r\\n]+\\s*", " ").strip());
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(indexFile, "file not found");
        } catch (AccessDeniedException e) {
            throw new ModelFormatException(indexFile, "permission denied");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + indexFile + ": " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new ModelFormatException(indexFile, "weight_map is missing or not a JSON object");
        }
        Path dir = folderOf(indexFile);
        Map<String, String> weightMap = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> e : map.properties()) {
            JsonNode shard = e.getValue();
            if (!shard.isTextual() || shard.textValue().isEmpty()) {
                throw new ModelFormatException(indexFile, "weight_map entry '" + e.getKey() + "' is not a file name");
            }
            Path resolved = dir.resolve(shard.textValue()).normalize();
            if (!resolved.startsWith(dir) || resolved.equals(dir)) {
                throw new ModelFormatException(indexFile, "weight_map entry '" + e.getKey() + "' names shard '"
                        + shard.textValue() + "' outside the model folder");
            }
            weightMap.put(e.getKey(), shard.textValue());
        }
        return new SafetensorsIndex(weightMap);
    }

    /** The path of {@code shardName} inside the model folder {@code dir}. */
    public static Path shardPath(Path dir, String shardName) {
        return dir.resolve(shardName).normalize();
    }

    /** The index as indented JSON text, metadata first as transformers writes it. */
    public byte[] toJson(long totalSize) {
        ObjectNode root = JSON.createObjectNode();
        root.putObject("metadata").put("total_size", totalSize);
        ObjectNode map = root.putObject("weight_map");
        weightMap.forEach(map::put);
        try {
            return JSON.writeValueAsBytes(root);
        } catch (JacksonException e) {
            throw new IllegalStateException("cannot serialize an index of plain strings", e);
        }
    }

    private static Path folderOf(Path file) {
        Path parent = file.toAbsolutePath().normalize().getParent();
        return parent == null ? file.toAbsolutePath().getRoot() : parent;
    }
}
