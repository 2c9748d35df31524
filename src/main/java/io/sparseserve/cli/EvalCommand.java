package io.sparseserve.cli;

import io.sparseserve.eval.Perplexity;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;
import java.io.PrintWriter;

@Command(name = "eval", mixinStandardHelpOptions = true,
        description = "Perplexity of a model on a text file (SparseGPT protocol: non-overlapping windows, tail dropped).")
final class EvalCommand implements Callable<Integer> {
    @Spec CommandSpec spec;

    @Mixin ModelOption model;

    @Mixin DeviceOption device;

    @Option(names = "--text", required = true, paramLabel = "FILE", description = "UTF-8 text to evaluate on.")
    Path text;

    @Option(names = "--seq-len", paramLabel = "N", description = "Window length in tokens (default: the model's context length).")
    Integer seqLen;

    @Option(names = "--max-windows", paramLabel = "K", defaultValue = "0", description = "Evaluate at most K windows (0 = all).")
    int maxWindows;

    @Option(names = "--max-chars", paramLabel = "C", defaultValue = "0", description = "Use only the first C characters of the text (0 = all).")
    int maxChars;

    @Option(names = "--json", description = "Print one JSON object: perplexity, windows, tokens, seconds.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        if (maxWindows < 0) throw new InvalidInputException("--max-windows must be >= 0, got " + maxWindows);
        var runners = device.runners();
        String content = readText(text);
        if (maxChars > 0 && content.length() > maxChars) content = content.substring(0, maxChars);
        try (Model m = model.load(); Tokenizer tok = model.tokenizer()) {
            int[] ids = tok.encode(content);
            int len = seqLen == null ? m.config().maxPositions() : seqLen;
            int windows = maxWindows > 0 ? Math.min(maxWindows, ids.length / Math.max(1, len)) : ids.length / Math.max(1, len);
            var bar = new ProgressBar("eval", windows, !json);
            Perplexity.Result r = Perplexity.evaluate(m, runners, ids, len, maxWindows, bar);
            if (json) {
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("perplexity", r.perplexity());
                result.put("windows", r.windows());
                result.put("tokens", r.tokens());
                result.put("seconds", r.seconds());
                Json.print(out, result);
            } else {
                out.printf("perplexity %.4f over %d windows of %d tokens (%d tokens) in %.1f s%n",
                        r.perplexity(), r.windows(), len, r.tokens(), r.seconds());
            }
        }
        return 0;
    }

    static String readText(Path file) {
        if (!Files.isRegularFile(file)) throw new InvalidInputException(file + ": no such text file");
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new InvalidInputException(file + ": not valid UTF-8 text");
        } catch (IOException e) {
            throw new InvalidInputException(file + ": cannot read (" + e.getMessage() + ")");
        }
    }
}
