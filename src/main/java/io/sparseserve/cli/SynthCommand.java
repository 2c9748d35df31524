package io.sparseserve.cli;

import io.sparseserve.model.Family;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.SyntheticModel;
import io.sparseserve.tensor.DType;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a random-weight model folder of a given family, shape and dtype (for benchmarks and tests).")
final class SynthCommand implements Callable<Integer> {
    @Option(names = "--family", required = true, description = "llama or opt.")
    String family;

    @Option(names = "--hidden", required = true) int hidden;
    @Option(names = "--layers", required = true) int layers;
    @Option(names = "--heads", required = true) int heads;
    @Option(names = "--kv-heads", description = "Key/value heads (default: --heads).") Integer kvHeads;
    @Option(names = "--intermediate", required = true) int intermediate;
    @Option(names = "--vocab", required = true) int vocab;
    @Option(names = "--context", defaultValue = "1024", description = "max_position_embeddings.") int context;
    @Option(names = "--dtype", defaultValue = "bf16", description = "f32, f16 or bf16.") String dtype;
    @Option(names = "--seed", defaultValue = "0") long seed;
    @Option(names = "--tokenizer", paramLabel = "FILE", description = "tokenizer.json to copy into the folder.") Path tokenizer;
    @Option(names = "--out", required = true, paramLabel = "DIR") Path out;
    @Option(names = "--force", description = "Overwrite an existing output folder.") boolean force;

    @Override
    public Integer call() throws IOException {
        Family f = Family.of(family);
        if (f == null) throw new InvalidInputException("--family must be llama or opt, got '" + family + "'");
        positive("--hidden", hidden);
        positive("--layers", layers);
        positive("--heads", heads);
        positive("--intermediate", intermediate);
        positive("--vocab", vocab);
        positive("--context", context);
        int kv = kvHeads == null ? heads : kvHeads;
        positive("--kv-heads", kv);
        if ((hidden / heads) % 2 != 0) throw new InvalidInputException("head dim hidden/heads = " + hidden / heads + " must be even");
        DType dt;
        try {
            dt = DType.parse(dtype);
        } catch (IllegalArgumentException e) {
            throw new InvalidInputException("--dtype: " + e.getMessage());
        }
        if (tokenizer != null && !Files.isRegularFile(tokenizer)) throw new InvalidInputException(tokenizer + ": no such tokenizer file");
        if (Files.exists(out) && !force) throw new InvalidInputException(out + ": already exists (use --force to overwrite)");
        SyntheticModel.write(new SyntheticModel.Shape(f, hidden, layers, heads, kv, intermediate, vocab, context), dt, seed, tokenizer, out);
        System.err.println("wrote " + out);
        return 0;
    }

    private static void positive(String name, int v) {
        if (v <= 0) throw new InvalidInputException(name + " must be a positive integer, got " + v);
    }
}
