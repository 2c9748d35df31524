package io.sparseserve.cli;

import io.sparseserve.engine.Generator;
import io.sparseserve.engine.SamplingParams;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.io.PrintWriter;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a prompt (greedy by default; --temperature > 0 samples).")
final class GenerateCommand implements Callable<Integer> {
    @Spec CommandSpec spec;
    @Mixin ModelOption model;
    @Mixin DeviceOption device;

    @Option(names = "--prompt", required = true, description = "The prompt text.")
    String prompt;

    @Option(names = "--max-new-tokens", defaultValue = "64", description = "Tokens to generate at most (default ${DEFAULT-VALUE}).")
    int maxNewTokens;

    @Option(names = "--temperature", defaultValue = "0", description = "0 = greedy (default); > 0 samples.")
    float temperature;

    @Option(names = "--top-k", defaultValue = "0", description = "Keep the k most likely tokens (0 = off).")
    int topK;

    @Option(names = "--top-p", defaultValue = "1", description = "Nucleus sampling mass in (0, 1] (1 = off).")
    float topP;

    @Option(names = "--min-p", defaultValue = "0", description = "Drop tokens below min-p times the top probability (0 = off).")
    float minP;

    @Option(names = "--repetition-penalty", defaultValue = "1", description = "> 1 discourages repeats (1 = off).")
    float repetitionPenalty;

    @Option(names = "--seed", defaultValue = "0", description = "Sampling seed (same seed, same text).")
    long seed;

    @Option(names = "--ignore-eos", description = "Keep generating past the end-of-sequence token.")
    boolean ignoreEos;

    @Option(names = "--json", description = "Print one JSON object: text, prompt_token_ids, token_ids, finish_reason.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        SamplingParams params = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, 0f, 0f, seed).validate();
        var runners = device.runners();
        try (Model m = model.load(); Tokenizer tok = model.tokenizer()) {
            int[] ids = tok.encode(prompt);
            Generator gen = new Generator(m, tok, runners);
            gen.validate(ids, params, maxNewTokens);
            if (!json) {
                out.print(prompt);
                out.flush();
            }
            Generator.Result r = gen.generate(ids, params, maxNewTokens, ignoreEos, json ? null : piece -> {
                out.print(piece);
                out.flush();
            });
            if (json) {
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("text", r.text());
                result.put("prompt_token_ids", r.promptIds());
                result.put("token_ids", r.tokenIds());
                result.put("finish_reason", r.finishReason().name().toLowerCase());
                Json.print(out, result);
            } else {
                out.println();
            }
        }
        return 0;
    }
}
