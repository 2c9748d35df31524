package io.sparseserve.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.cuda.RunnerComparison;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Runs a model on a device and on the CPU in one process and compares them (issue 8's correctness check, used by
 * native/gpu-check.sh): every prompt row's logits, then greedy ids over the new tokens ({@link RunnerComparison}).
 * The prompt is reference.json's greedy prompt where the folder has one, else the tokenized {@code --prompt}.
 */
@Command(name = "gpu-compare", mixinStandardHelpOptions = true,
        description = "Compare a device's logits and greedy ids with the CPU backend's on one model.")
final class GpuCompareCommand implements Callable<Integer> {
    @Spec picocli.CommandLine.Model.CommandSpec spec;
    @Mixin ModelOption model;
    @Mixin DeviceOption device;

    @Option(names = "--new-tokens", defaultValue = "32", description = "Greedy tokens compared (default ${DEFAULT-VALUE}).")
    int newTokens;

    @Option(names = "--tolerance", defaultValue = "1e-2",
            description = "Largest |device - cpu| per row, as a fraction of the row's largest |logit| (default ${DEFAULT-VALUE}).")
    double tolerance;

    @Option(names = "--prompt", defaultValue = "The kernel's memory management subsystem",
            description = "Prompt text when the model folder has no reference.json.")
    String prompt;

    @Option(names = "--reference", defaultValue = "cpu", paramLabel = "DEVICE",
            description = "The device compared against (default ${DEFAULT-VALUE}); e.g. --device cuda:0,0 --reference cuda:0 "
                    + "checks a layer split against one stage.")
    String reference;

    @Option(names = "--same-ids",
            description = "Also let each device generate --new-tokens greedy ids on its own; pass only if they are identical "
                    + "(a layer split must equal one stage token for token).")
    boolean sameIds;

    @Option(names = "--json", description = "Print one JSON object.") boolean json;

    @Override
    public Integer call() throws IOException {
        if (newTokens < 2) throw new InvalidInputException("--new-tokens must be >= 2, got " + newTokens);
        if (!(tolerance > 0)) throw new InvalidInputException("--tolerance must be > 0, got " + tolerance);
        var deviceRunners = device.runners();
        io.sparseserve.backend.Device ref = io.sparseserve.backend.Device.parse(reference);
        io.sparseserve.backend.DeviceOptions o = device.options();
        var referenceRunners = ref.isCpu() ? ModelRunners.cpu()
                : ModelRunners.factory(ref, new io.sparseserve.backend.DeviceOptions(o.kvDtype(), o.gpuMemoryUtilization(), o.sparseKernel()));
        try (Model m = model.load()) {
            int[] ids = promptIds(model.dir);
            if (ids.length + newTokens > m.config().maxPositions()) {
                throw new InvalidInputException("prompt " + ids.length + " + " + newTokens + " tokens exceed the context " + m.config().maxPositions());
            }
            RunnerConfig rc = RunnerConfig.forSequence(ids.length, ids.length + newTokens);
            try (ModelRunner refRunner = referenceRunners.open(m, rc); ModelRunner dev = deviceRunners.open(m, rc)) {
                Map<String, Object> r = RunnerComparison.compare(refRunner, dev, ids, newTokens, tolerance);
                r.put("model", model.dir.toString());
                r.put("prompt_tokens", ids.length);
                r.put("runner", dev.describe());
                if (sameIds) {
                    // Fresh KV contents do not matter: every position is written before it is read.
                    int[] a = RunnerComparison.greedy(refRunner, ids, newTokens), b = RunnerComparison.greedy(dev, ids, newTokens);
                    r.put("reference_ids", a);
                    r.put("device_ids", b);
                    r.put("same_ids", java.util.Arrays.equals(a, b));
                    r.put("pass", Boolean.TRUE.equals(r.get("pass")) && java.util.Arrays.equals(a, b));
                }
                if (json) Json.print(spec.commandLine().getOut(), r);
                else r.forEach((k, v) -> spec.commandLine().getOut().println(k + ": " + v));
                return Boolean.TRUE.equals(r.get("pass")) ? 0 : 1;
            }
        }
    }

    private int[] promptIds(Path dir) throws IOException {
        Path ref = dir.resolve("reference.json");
        if (Files.isRegularFile(ref)) {
            JsonNode ids = new ObjectMapper().readTree(ref.toFile()).path("greedy").path("prompt_ids");
            if (ids.isArray() && !ids.isEmpty()) {
                int[] out = new int[ids.size()];
                for (int i = 0; i < out.length; i++) out[i] = ids.get(i).asInt();
                return out;
            }
        }
        try (Tokenizer tok = model.tokenizer()) {
            int[] ids = tok.encode(prompt);
            if (ids.length == 0) throw new InvalidInputException("--prompt encodes to no tokens");
            return ids;
        }
    }
}
