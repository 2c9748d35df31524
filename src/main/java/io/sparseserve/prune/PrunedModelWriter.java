package io.sparseserve.prune;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.sparseserve.model.CompressedWeights;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelFiles;
import io.sparseserve.model.SafetensorsFile;
import io.sparseserve.model.SafetensorsWriter;
import io.sparseserve.model.SafetensorsWriter.Entry;
import io.sparseserve.model.TensorInfo;
import io.sparseserve.tensor.BitmaskMatrix;
import io.sparseserve.tensor.DType;
import io.sparseserve.tensor.DenseMatrix;
import io.sparseserve.tensor.NmMatrix;
import io.sparseserve.tensor.WeightMatrix;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;

/**
 * Writes a pruned model as a Hugging Face folder next to its source's layout: every tensor of the source in its
 * order, the pruned linears' weights replaced by their compressed parts ({@link CompressedWeights}) or by dense
 * tensors with exact zeros; {@code config.json} with compressed-tensors' {@code quantization_config.sparsity_config}
 * (compressed output only) and a {@code pruning} record of how it was made; the tokenizer and every other top-level
 * file copied.
 *
 * <p>Everything goes to a hidden temporary folder beside the output, renamed into place at the end, so the output
 * either appears complete or not at all; a shutdown hook removes the temporary folder when the process is stopped
 * (Ctrl-C, SIGTERM) while writing.
 */
public final class PrunedModelWriter {
    /** Above this many bytes of tensors the weights are sharded (transformers' default max_shard_size). */
    static final long MAX_SINGLE_FILE_BYTES = 5_000_000_000L;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private PrunedModelWriter() {}

    /** How pruned weights are written: compressed-tensors' sparse layouts, or dense tensors with exact zeros. */
    public enum Layout { SPARSE, DENSE }

    /**
     * @param pruned    module name to pruned weight; compressed ones are written in their own layout, or dense
     * @param ignored   decoder linears deliberately left dense (listed in sparsity_config.ignore)
     * @param structure "unstructured" or "N:M"
     * @param pruning   a record of the run for config.json (method, pattern, calibration, ...)
     * @param layout    DENSE writes every pruned weight as a dense tensor (the same values)
     * @param force     replace {@code out} if it exists
     */
    public static void write(Model source, Map<String, WeightMatrix> pruned, List<String> ignored, String structure,
                             double sparsity, ObjectNode pruning, Layout layout, Path out, boolean force) throws IOException {
        if (layout == Layout.DENSE) pruned = densified(pruned);
        Path target = out.toAbsolutePath().normalize();
        if (Files.exists(target) && !force) throw new InvalidInputException(out + ": already exists (use --force to replace it)");
        Path parent = target.getParent();
        Files.createDirectories(parent);
        String tag = Long.toHexString(ThreadLocalRandom.current().nextLong());
        Path tmp = parent.resolve("." + target.getFileName() + ".tmp-" + tag);
        Thread cleanup = new Thread(() -> deleteQuietly(tmp), "prune-output-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            Files.createDirectory(tmp);
            writeWeights(source, pruned, tmp);
            writeConfig(source, pruned, ignored, structure, sparsity, pruning, tmp.resolve("config.json"));
            copyOtherFiles(source, tmp);
            commit(tmp, target, tag);
        } catch (IOException | RuntimeException | Error e) {
            deleteQuietly(tmp);
            throw e;
        } finally {
            try {
                Runtime.getRuntime().removeShutdownHook(cleanup);
            } catch (IllegalStateException shuttingDown) {
                // The hook is running or about to: it deletes the temporary folder.
            }
        }
    }

    private static Map<String, WeightMatrix> densified(Map<String, WeightMatrix> pruned) {
        Map<String, WeightMatrix> out = new java.util.LinkedHashMap<>();
        pruned.forEach((name, w) -> {
            if (w instanceof DenseMatrix) {
                out.put(name, w);
            } else {
                float[] v = new float[w.rows() * w.cols()];
                w.decode(0, w.rows(), 0, w.cols(), v, 0);
                out.put(name, DenseMatrix.fromFloats(v, w.rows(), w.cols(), w.dtype()));
            }
        });
        return out;
    }

    private static void writeWeights(Model source, Map<String, WeightMatrix> pruned, Path dir) throws IOException {
        List<Entry> entries = new ArrayList<>();
        Set<String> emitted = new HashSet<>();
        for (Map.Entry<String, TensorInfo> e : source.files().tensors().entrySet()) {
            String name = e.getKey();
            String module = CompressedWeights.moduleOfPart(name);
            if (module == null && name.endsWith(".weight")) module = CompressedWeights.module(name);
            WeightMatrix w = module == null ? null : pruned.get(module);
            if (w == null) {
                entries.add(Entry.of(e.getValue()));
            } else if (emitted.add(module)) {
                entries.addAll(parts(module, w));
            }
        }
        long bytes = entries.stream().mapToLong(en -> en.data().byteSize()).sum();
        if (bytes > MAX_SINGLE_FILE_BYTES) {
            SafetensorsWriter.writeSharded(dir, entries, MAX_SINGLE_FILE_BYTES);
        } else {
            SafetensorsWriter w = new SafetensorsWriter();
            entries.forEach(w::add);
            w.write(dir.resolve(ModelFiles.SINGLE_FILE));
        }
    }

    /** The tensors that store one pruned weight. */
    static List<Entry> parts(String module, WeightMatrix w) {
        long rows = w.rows(), cols = w.cols();
        long[] maskShape = {rows, (cols + 7) / 8};
        return switch (w) {
            case DenseMatrix d -> List.of(new Entry(module + ".weight", d.dtype(), new long[] {rows, cols}, d.data()));
            case BitmaskMatrix b -> List.of(
                    shape(module, rows, cols),
                    new Entry(CompressedWeights.part(module, CompressedWeights.COMPRESSED), b.dtype(), new long[] {b.keptCount()}, b.values()),
                    new Entry(CompressedWeights.part(module, CompressedWeights.BITMASK), DType.U8, maskShape, b.bitmask()),
                    new Entry(CompressedWeights.part(module, CompressedWeights.ROW_OFFSETS), DType.I64, new long[] {rows}, b.rowOffsets()));
            case NmMatrix nm -> {
                if (nm.n() != 2 || nm.m() != 4) throw new IllegalArgumentException("only 2:4 has an N:M layout on disk");
                yield List.of(
                        shape(module, rows, cols),
                        new Entry(CompressedWeights.part(module, CompressedWeights.COMPRESSED), nm.dtype(), new long[] {rows, cols / 2}, nm.values()),
                        new Entry(CompressedWeights.part(module, CompressedWeights.BITMASK), DType.U8, maskShape, nm.bitmask()));
            }
        };
    }

    private static Entry shape(String module, long rows, long cols) {
        MemorySegment s = MemorySegment.ofArray(new byte[16]);
        s.set(I64_LE, 0, rows);
        s.set(I64_LE, 8, cols);
        return new Entry(CompressedWeights.part(module, CompressedWeights.SHAPE), DType.I64, new long[] {2}, s);
    }

    private static void writeConfig(Model source, Map<String, WeightMatrix> pruned, List<String> ignored, String structure,
                                    double sparsity, ObjectNode pruning, Path file) throws IOException {
        ObjectNode config = source.config().raw().deepCopy();
        config.remove("quantization_config");
        java.util.TreeSet<String> formats = new java.util.TreeSet<>();
        for (WeightMatrix w : pruned.values()) if (!(w instanceof DenseMatrix)) formats.add(w.format());
        // One layout per run; were there ever two, sparse-bitmask is the one that can describe any matrix.
        String format = formats.isEmpty() ? null : formats.size() == 1 ? formats.first() : CompressedWeights.FORMAT_BITMASK;
        if (format != null) {
            ObjectNode q = config.putObject("quantization_config");
            q.put("quant_method", "compressed-tensors");
            ObjectNode sc = q.putObject("sparsity_config");
            sc.put("format", format);
            sc.put("global_sparsity", sparsity);
            sc.put("sparsity_structure", structure);
            sc.putArray("targets").add("Linear");
            var ignore = sc.putArray("ignore");
            ignore.add("lm_head");
            ignored.forEach(ignore::add);
        }
        if (pruning != null) config.set("pruning", pruning);
        Files.write(file, JSON.writeValueAsBytes(config));
    }

    /** Copies the source folder's other regular files (tokenizer, generation config, README ...); not its weights. */
    private static void copyOtherFiles(Model source, Path dir) throws IOException {
        Set<String> skip = new HashSet<>(Set.of("config.json", ModelFiles.SINGLE_FILE, "model.safetensors.index.json"));
        for (SafetensorsFile f : source.files().files()) skip.add(f.file().getFileName().toString());
        try (DirectoryStream<Path> files = Files.newDirectoryStream(source.dir())) {
            for (Path p : files) {
                String name = p.getFileName().toString();
                if (skip.contains(name) || name.endsWith(".safetensors") || !Files.isRegularFile(p)) continue;
                Files.copy(p, dir.resolve(name), StandardCopyOption.COPY_ATTRIBUTES);
            }
        }
    }

    /** Renames the finished folder into place; an existing output (with --force) is moved aside, then deleted. */
    private static void commit(Path tmp, Path target, String tag) throws IOException {
        if (Files.exists(target)) {
            Path old = target.resolveSibling("." + target.getFileName() + ".old-" + tag);
            Files.move(target, old, StandardCopyOption.ATOMIC_MOVE);
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
            deleteQuietly(old);
        } else {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        }
    }

    static void deleteQuietly(Path dir) {
        if (!Files.exists(dir)) return;
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        } catch (IOException | UncheckedIOException e) {
            // Best effort: a leftover hidden temporary folder is harmless and named as such.
        }
    }
}
