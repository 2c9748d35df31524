package io.sparseserve.model;

import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.tensor.WeightMatrix;
import io.sparseserve.tensor.ZeroCompression;
import java.lang.foreign.Arena;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/** A loaded model: its configuration, its memory-mapped files and the weights wired for its family. */
public final class Model implements AutoCloseable {
    private final Path dir;
    private final ModelConfig config;
    private final ModelFiles files;
    private final ModelWeights weights;
    private final Arena compressed;
    private final Map<String, ZeroCompression.Scan> detected;

    private Model(Path dir, ModelConfig config, ModelFiles files, ModelWeights weights, Arena compressed,
                  Map<String, ZeroCompression.Scan> detected) {
        this.dir = dir;
        this.config = config;
        this.files = files;
        this.weights = weights;
        this.compressed = compressed;
        this.detected = detected;
    }

    /** How dense linears with exact zeros are held: compressed when they qualify ({@link LoadCompression}), or as stored. */
    public enum Compress { AUTO, OFF }

    /** Loads a Hugging Face folder with {@code --compress auto}. */
    public static Model load(Path dir) {
        return load(dir, 0, Compress.AUTO);
    }

    /** Loads a Hugging Face folder at its declared context, dense linears with zeros held as {@code compress} says. */
    public static Model load(Path dir, Compress compress) {
        return load(dir, 0, compress);
    }

    /** Loads a Hugging Face folder; a corrupt or unsupported one throws {@link ModelFormatException}. */
    public static Model load(Path dir, int maxModelLen) {
        return load(dir, maxModelLen, Compress.AUTO);
    }

    /**
     * Loads a folder to serve at most {@code maxModelLen} positions (0: the declared context), with the default stop
     * set of its config, generation config and tokenizer config ({@link StopTokens}), its dense linears with zeros
     * held as {@code compress} says.
     */
    public static Model load(Path dir, int maxModelLen, Compress compress) {
        ModelConfig declared = ModelConfig.read(dir);
        ModelConfig config = declared.served(maxModelLen)
                .withEosTokenIds(StopTokens.defaults(dir, declared, TokenizerConfig.read(dir)));
        ModelFiles files = ModelFiles.open(dir);
        Arena arena = Arena.ofShared();
        try {
            TensorSource src = new TensorSource(files, config);
            ModelWeights weights = switch (config.family()) {
                case LLAMA -> LlamaWiring.wire(config, src);
                case OPT -> OptWiring.wire(config, src);
            };
            Map<String, ZeroCompression.Scan> detected = new LinkedHashMap<>();
            weights = LoadCompression.apply(weights, arena, detected, compress == Compress.AUTO);
            return new Model(dir, config, files, weights, arena, Collections.unmodifiableMap(detected));
        } catch (RuntimeException e) {
            arena.close();
            files.close();
            throw e;
        }
    }

    /**
     * Per decoder linear stored dense, what the load-time scan found (zeros, 2:4 or not); empty under
     * {@code --compress off}. A linear whose matrix is no longer a {@link io.sparseserve.tensor.DenseMatrix} was
     * compressed at load.
     */
    public Map<String, ZeroCompression.Scan> detected() {
        return detected;
    }

    public Path dir() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    public ModelWeights weights() {
        return weights;
    }

    public ModelFiles files() {
        return files;
    }

    /** Bytes of all distinct weight matrices in memory (a tied head counts once). */
    public long weightBytes() {
        return matrices().stream().mapToLong(n -> n.matrix().bytes()).sum();
    }

    /** The bytes the same matrices would take dense in their dtype. */
    public long denseEquivalentBytes() {
        return matrices().stream().mapToLong(n -> n.matrix().denseBytes()).sum();
    }

    /** A weight matrix with the module name it was loaded from. */
    public record NamedMatrix(String name, WeightMatrix matrix, boolean linear) {}

    /** Every distinct matrix in load order, linears of decoder layers marked (they are what pruning touches). */
    public List<NamedMatrix> matrices() {
        List<NamedMatrix> all = new ArrayList<>();
        Set<WeightMatrix> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        if (seen.add(weights.embed())) all.add(new NamedMatrix("embed_tokens", weights.embed(), false));
        if (weights.positions() instanceof ModelWeights.Positions.Learned l && seen.add(l.table())) {
            all.add(new NamedMatrix("embed_positions", l.table(), false));
        }
        for (ModelWeights.Layer layer : weights.layers()) {
            for (Linear lin : layer.linears()) {
                if (seen.add(lin.weight())) all.add(new NamedMatrix(lin.name(), lin.weight(), true));
            }
        }
        if (seen.add(weights.lmHead())) all.add(new NamedMatrix("lm_head", weights.lmHead(), false));
        return all;
    }

    @Override
    public void close() {
        compressed.close();
        files.close();
    }
}
