package io.sparseserve.cli;

import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.nio.file.Files;
import java.nio.file.Path;
import picocli.CommandLine.Option;

/** The {@code --model DIR} option shared by the subcommands, with loading and its checks. */
final class ModelOption {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face model folder.")
    Path dir;

    @Option(names = "--compress", defaultValue = "auto", paramLabel = "auto|off", description = COMPRESS_HELP)
    String compress;

    static final String COMPRESS_HELP = "auto (default): hold dense linears with >= 40%% exact zeros compressed (2:4 when "
            + "every group of 4 allows it) and run them on the sparse kernels; off: as stored.";

    @Option(names = "--max-model-len", paramLabel = "N", defaultValue = "0",
            description = "Serve at most N positions of context (default: the model's max_position_embeddings); "
                    + "the rotary tables and the KV cache are sized to it.")
    int maxModelLen;

    Model load() {
        if (maxModelLen < 0) throw new InvalidInputException("--max-model-len must be >= 1, got " + maxModelLen);
        return loadChecked(dir, maxModelLen, compressMode(compress));
    }

    /** Loads a folder, a missing one being one line. */
    static Model loadChecked(Path dir, int maxModelLen, Model.Compress compress) {
        if (!Files.isDirectory(dir)) throw new InvalidInputException(dir + ": not a model folder (no such directory)");
        return Model.load(dir, maxModelLen, compress);
    }

    /** auto or off, case-insensitive; anything else is one line naming the choices. */
    static Model.Compress compressMode(String value) {
        return switch (value.toLowerCase(java.util.Locale.ROOT)) {
            case "auto" -> Model.Compress.AUTO;
            case "off" -> Model.Compress.OFF;
            default -> throw new InvalidInputException("--compress must be auto or off, got '" + value + "'");
        };
    }

    Tokenizer tokenizer() {
        Path file = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) throw new InvalidInputException(file + ": missing tokenizer.json");
        return Tokenizer.load(file);
    }
}
