package io.sparseserve.model;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.StreamReadFeature;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.json.JsonMapper;
import io.sparseserve.tensor.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The JSON header of a safetensors file, parsed and checked against the size of the data section that follows it.
 * Format (https://github.com/huggingface/safetensors, README "Format"): a JSON object mapping each tensor name to
 * {@code {"dtype", "shape", "data_offsets": [begin, end]}}, offsets relative to the start of the data section, plus an
 * optional {@code "__metadata__"} object of string values.
 *
 * <p>Every problem becomes a {@link ModelFormatException} naming the file and the tensor, because a corrupt or
 * foreign file is the user's input, not our bug. Unlike the reference reader we accept gaps between tensors and
 * trailing bytes: they cannot make us read wrong data, and rejecting them would only refuse usable files.
 */
record SafetensorsHeader(Map<String, Entry> entries, Map<String, String> metadata) {
    static final String METADATA_KEY = "__metadata__";

    /** One tensor's header entry; offsets are relative to the data section. */
    record Entry(String name, DType dtype, long[] shape, long begin, long end) {
        long byteLength() {
            return end - begin;
        }

        String offsets() {
            return "[" + begin + ", " + end + "]";
        }
    }

    private static final String SUPPORTED_DTYPES =
            Arrays.stream(DType.values()).map(DType::name).collect(Collectors.joining(", "));

    // Duplicate names would silently shadow a tensor, and trailing tokens mean the length prefix is wrong.
    private static final JsonMapper JSON = JsonMapper.builder()
            .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
            .build();

    /** Parses {@code json} (the header bytes) of {@code file}, whose data section is {@code dataSize} bytes long. */
    static SafetensorsHeader parse(Path file, byte[] json, long dataSize) {
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JacksonException e) {
            String at = e.getLocation() == null || e.getLocation().getByteOffset() < 0
                    ? "" : " (at header byte " + e.getLocation().getByteOffset() + ")";
            throw new ModelFormatException(file, "header is not valid JSON" + at + ": " + oneLine(e.getOriginalMessage()));
        } catch (java.io.IOException e) {
            // readTree(byte[]) does no I/O; any other IOException is still a parse failure of those bytes.
            throw new ModelFormatException(file, "header is not valid JSON: " + oneLine(e.getMessage()));
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file, "header is not a JSON object");
        }

        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, Entry> entries = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            if (field.getKey().equals(METADATA_KEY)) {
                parseMetadata(file, field.getValue(), metadata);
            } else {
                Entry e = parseEntry(file, field.getKey(), field.getValue(), dataSize);
                entries.put(e.name(), e);
            }
        }
        checkWithinData(file, entries.values(), dataSize);
        checkNoOverlap(file, entries.values());
        return new SafetensorsHeader(Collections.unmodifiableMap(entries), Collections.unmodifiableMap(metadata));
    }

    private static void parseMetadata(Path file, JsonNode node, Map<String, String> out) {
        if (node.isNull()) return;
        if (!node.isObject()) throw new ModelFormatException(file, METADATA_KEY + " is not a JSON object");
        for (Map.Entry<String, JsonNode> kv : node.properties()) {
            if (!kv.getValue().isTextual()) {
                throw new ModelFormatException(file, METADATA_KEY + " entry '" + kv.getKey() + "' is not a string");
            }
            out.put(kv.getKey(), kv.getValue().textValue());
        }
    }

    private static Entry parseEntry(Path file, String name, JsonNode node, long dataSize) {
        String where = "tensor '" + name + "': ";
        if (!node.isObject()) throw new ModelFormatException(file, where + "header entry is not a JSON object");

        JsonNode dtypeNode = node.get("dtype");
        if (dtypeNode == null || !dtypeNode.isTextual()) {
            throw new ModelFormatException(file, where + "dtype is missing or not a string");
        }
        DType dtype = DType.fromSafetensors(dtypeNode.textValue());
        if (dtype == null) {
            throw new ModelFormatException(file, where + "unknown dtype '" + dtypeNode.textValue()
                    + "' (supported: " + SUPPORTED_DTYPES + ")");
        }

        JsonNode shapeNode = node.get("shape");
        if (shapeNode == null || !shapeNode.isArray()) {
            throw new ModelFormatException(file, where + "shape is missing or not an array");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new ModelFormatException(file, where + "shape " + shapeNode + " has a dimension that is not a"
                        + " non-negative integer");
            }
            shape[i] = d.longValue();
        }
        long needed;
        try {
            needed = Math.multiplyExact(TensorInfo.numel(shape), dtype.bytes());
        } catch (ArithmeticException e) {
            throw new ModelFormatException(file, where + "shape " + shapeNode + " is too large (over 2^63 bytes)");
        }

        String dataSection = " (data section: " + dataSize + " bytes)";
        JsonNode offs = node.get("data_offsets");
        if (offs == null) {
            throw new ModelFormatException(file, where + "data_offsets missing (expected [begin, end])" + dataSection);
        }
        if (!offs.isArray() || offs.size() != 2 || !isLong(offs.get(0)) || !isLong(offs.get(1))) {
            throw new ModelFormatException(file, where + "data_offsets " + offs + " is not [begin, end] of two"
                    + " integers" + dataSection);
        }
        long begin = offs.get(0).longValue();
        long end = offs.get(1).longValue();
        String offsets = "data_offsets [" + begin + ", " + end + "]";
        if (begin < 0 || end < 0) {
            throw new ModelFormatException(file, where + offsets + " are negative" + dataSection);
        }
        if (end < begin) {
            throw new ModelFormatException(file, where + offsets + " end before they begin" + dataSection);
        }
        if (end - begin != needed) {
            throw new ModelFormatException(file, where + offsets + " hold " + (end - begin) + " bytes but shape "
                    + Arrays.toString(shape) + " of " + dtype + " needs " + needed);
        }
        return new Entry(name, dtype, shape, begin, end);
    }

    private static boolean isLong(JsonNode n) {
        return n.isIntegralNumber() && n.canConvertToLong();
    }

    /**
     * The data section must reach the largest end offset. It falls short either because the file was cut (an
     * interrupted download or copy, by far the common case) or because an offset is wrong; the message gives both
     * numbers so the user can tell which.
     */
    private static void checkWithinData(Path file, Iterable<Entry> entries, long dataSize) {
        Entry last = null;
        for (Entry e : entries) {
            if (last == null || e.end() > last.end()) last = e;
        }
        if (last != null && last.end() > dataSize) {
            throw new ModelFormatException(file, "truncated: tensor '" + last.name() + "' has data_offsets "
                    + last.offsets() + " but the data section is only " + dataSize + " bytes");
        }
    }

    /** Two tensors sharing bytes would alias each other's weights; empty tensors occupy nothing and never overlap. */
    private static void checkNoOverlap(Path file, Iterable<Entry> entries) {
        List<Entry> sorted = new ArrayList<>();
        for (Entry e : entries) {
            if (e.byteLength() > 0) sorted.add(e);
        }
        sorted.sort(Comparator.comparingLong(Entry::begin));
        Entry reach = null; // the tensor reaching furthest so far
        for (Entry e : sorted) {
            if (reach != null && e.begin() < reach.end()) {
                throw new ModelFormatException(file, "tensors '" + reach.name() + "' (data_offsets " + reach.offsets()
                        + ") and '" + e.name() + "' (data_offsets " + e.offsets() + ") overlap");
            }
            if (reach == null || e.end() > reach.end()) reach = e;
        }
    }

    private static String oneLine(String s) {
        return s == null ? "unknown error" : s.replaceAll("\\s*[\\r\\n]+\\s*", " ").strip();
    }
}
