package io.sparseserve.model;

import io.sparseserve.model.ModelWeights.Linear;
import io.sparseserve.tensor.WeightMatrix;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/** A loaded model: its configuration, its memory-mapped files and the weights wired for its family. */
public final class Model implements AutoCloseable {
    private final Path dir;
    private final ModelConfig config;
    private final ModelFiles files;
    private final ModelWeights weights;

    private Model(Path dir, ModelConfig config, ModelFiles files, ModelWeights weights) {
        this.dir = dir;
        this.config = config;
        this.files = files;
        this.weights = weights;
    }

    /** Loads a Hugging Face folder; a corrupt or unsupported one throws {@link ModelFormatException}. */
    public static Model load(Path dir) {
        return load(dir, 0);
    }

    /**
     * Loads a folder to serve at most {@code maxModelLen} positions (0: the declared context), with the default stop
     * set of its config, generation config and tokenizer config ({@link StopTokens}).
     */
    public static Model load(Path dir, int maxModelLen) {
        ModelConfig declared = ModelConfig.read(dir);
        ModelConfig config = declared.served(maxModelLen)
                .withEosTokenIds(StopTokens.defaults(dir, declared, TokenizerConfig.read(dir)));
        ModelFiles files = ModelFiles.open(dir);
        try {
            TensorSource src = new TensorSource(files, config);
            ModelWeights weights = switch (config.family()) {
                case LLAMA -> LlamaWiring.wire(config, src);
                case OPT -> OptWiring.wire(config, src);
            };
            return new Model(dir, config, files, weights);
        } catch (RuntimeException e) {
            files.close();
            throw e;
        }
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
        files.close();
    }
}
