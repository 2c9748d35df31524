package io.sparseserve.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.model.ModelFiles;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.model.TensorInfo;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DTypeConvert;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Re-saves a fixture model folder in another dtype, as one file or as shards, the way a user's checkpoint might come. */
final class FixtureResave {
    private FixtureResave() {}

    static Path resave(Path src, Path out, DType dtype, boolean sharded) throws IOException {
        Files.createDirectories(out);
        try (ModelFiles files = ModelFiles.open(src); Arena arena = Arena.ofConfined()) {
            List<SafetensorsWriter.Entry> entries = new ArrayList<>();
            for (TensorInfo t : files.tensors().values()) {
                var data = t.dtype() == dtype ? t.data() : DTypeConvert.convert(t.data(), t.dtype(), dtype, arena);
                entries.add(new SafetensorsWriter.Entry(t.name(), dtype, t.shape(), data));
            }
            if (sharded) {
                // Small shards so that layers are split across files.
                SafetensorsWriter.writeSharded(out, entries, files.totalBytes() / 3 + 1);
            } else {
                SafetensorsWriter w = new SafetensorsWriter();
                entries.forEach(w::add);
                w.write(out.resolve("model.safetensors"));
            }
        }
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree(src.resolve("config.json").toFile());
        config.put("torch_dtype", switch (dtype) {
            case BF16 -> "bfloat16";
            case F16 -> "float16";
            default -> "float32";
        });
        json.writeValue(out.resolve("config.json").toFile(), config);
        Files.copy(src.resolve("tokenizer.json"), out.resolve("tokenizer.json"));
        return out;
    }
}
