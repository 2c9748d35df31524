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

    @Option(names = "--max-model-len", paramLabel = "N", defaultValue = "0",
            description = "Serve at most N positions of context (default: the model's max_position_embeddings); "
                    + "the rotary tables and the KV cache are sized to it.")
    int maxModelLen;

    Model load() {
        if (!Files.isDirectory(dir)) throw new InvalidInputException(dir + ": not a model folder (no such directory)");
        if (maxModelLen < 0) throw new InvalidInputException("--max-model-len must be >= 1, got " + maxModelLen);
        return Model.load(dir, maxModelLen);
    }

    Tokenizer tokenizer() {
        Path file = dir.resolve("tokenizer.json");
        if (!Files.isRegularFile(file)) throw new InvalidInputException(file + ": missing tokenizer.json");
        return Tokenizer.load(file);
    }
}
