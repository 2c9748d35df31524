package io.sparseserve.server;

import io.sparseserve.model.ModelFiles;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.model.TensorInfo;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;

/**
 * Test inputs for serving pruned models: a copy of a BF16 model whose decoder linears are magnitude-pruned to half
 * zeros per row, written in the {@code --format dense} layout (ordinary tensors with exact zeros) that any loader
 * reads.
 */
final class PrunedModels {
    private PrunedModels() {}

    private static final ValueLayout.OfShort BF16 = ValueLayout.JAVA_SHORT_UNALIGNED;

    static Path halfPrunedCopy(Path src, Path dst) throws IOException {
        Files.createDirectories(dst);
        Files.copy(src.resolve("config.json"), dst.resolve("config.json"), StandardCopyOption.REPLACE_EXISTING);
        Files.copy(src.resolve("tokenizer.json"), dst.resolve("tokenizer.json"), StandardCopyOption.REPLACE_EXISTING);
        try (ModelFiles files = ModelFiles.open(src); Arena arena = Arena.ofConfined()) {
            SafetensorsWriter w = new SafetensorsWriter().metadata("format", "pt");
            for (String name : files.names().stream().sorted().toList()) {
                TensorInfo t = files.tensor(name);
                boolean linear = t.rank() == 2 && name.contains(".layers.") && name.endsWith("_proj.weight");
                if (!linear) {
                    w.add(t);
                    continue;
                }
                if (t.dtype() != DType.BF16) throw new IllegalArgumentException(name + " is not bf16");
                MemorySegment copy = arena.allocate(t.byteSize());
                copy.copyFrom(t.data());
                pruneRows(copy, t.dim(0), t.dim(1));
                w.add(name, t.dtype(), t.shape(), copy);
            }
            w.write(dst.resolve("model.safetensors"));
        }
        return dst;
    }

    /** Zeroes the cols/2 smallest magnitudes of every row (BF16 magnitudes order like their bits without sign). */
    private static void pruneRows(MemorySegment m, int rows, int cols) {
        int[] keys = new int[cols];
        for (int r = 0; r < rows; r++) {
            long base = (long) r * cols * 2;
            for (int c = 0; c < cols; c++) keys[c] = (m.get(BF16, base + 2L * c) & 0x7FFF) << 16 | c;
            int[] sorted = keys.clone();
            Arrays.sort(sorted);
            for (int i = 0; i < cols / 2; i++) m.set(BF16, base + 2L * (sorted[i] & 0xFFFF), (short) 0);
        }
    }
}
