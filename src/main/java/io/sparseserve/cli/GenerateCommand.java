package io.sparseserve.cli;

import io.sparseserve.engine.Generator;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.engine.SamplingParams;
import io.sparseserve.model.ChatTemplate;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.engine.Seeds;
import io.sparseserve.model.Model;
import io.sparseserve.model.Tokenizer;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a prompt or a chat (greedy by default; --temperature > 0 samples).")
final class GenerateCommand implements Callable<Integer> {
    @Spec CommandSpec spec;
    @Mixin ModelOption model;
    @Mixin DeviceOption device;

    @ArgGroup(exclusive = true, multiplicity = "1")
    Input input;

    static final class Input {
        @Option(names = "--prompt", required = true,
                description = "The prompt text; the tokenizer adds its special tokens (e.g. Llama 3's BOS).")
        String prompt;

        @Option(names = "--messages", required = true, paramLabel = "FILE",
                description = "A JSON array of {role, content} messages, rendered with the model's chat template.")
        Path messages;
    }

    @Option(names = "--keep-special-tokens", description = "Keep special tokens (e.g. <|eot_id|>) in the text.")
    boolean keepSpecialTokens;

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

    @Option(names = "--seed", description = "Sampling seed (same seed, same text); default: a fresh random seed, "
            + "printed by --json.")
    Long seed;

    @Option(names = "--ignore-eos", description = "Keep generating past the end-of-sequence token.")
    boolean ignoreEos;

    @Option(names = "--json", description = "Print one JSON object: text, prompt_token_ids, token_ids, finish_reason, seed.")
    boolean json;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        long used = seed != null ? seed : Seeds.fresh();
        SamplingParams params = new SamplingParams(temperature, topK, topP, minP, repetitionPenalty, 0f, 0f, used).validate();
        var runners = device.runners();
        try (Model m = model.load(); Tokenizer tok = model.tokenizer()) {
            int[] ids;
            if (input.messages != null) {
                // The template writes the special tokens itself: its prompt is tokenized without adding any.
                ChatTemplate template = ChatTemplate.load(m.dir());
                if (template == null) {
                    throw new InvalidInputException(m.dir() + ": the model has no chat template (tokenizer_config.json "
                            + "chat_template or chat_template.jinja); use --prompt");
                }
                ids = tok.encode(template.render(readMessages(input.messages), null, true));
            } else {
                ids = tok.encodePrompt(input.prompt);
            }
            Generator gen = new Generator(m, tok, runners);
            gen.validate(ids, params, maxNewTokens);
            if (!json && input.prompt != null) {
                out.print(input.prompt);
                out.flush();
            }
            Generator.Result r = gen.generate(ids, params, maxNewTokens, ignoreEos, !keepSpecialTokens, json ? null : piece -> {
                out.print(piece);
                out.flush();
            });
            if (json) {
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("text", r.text());
                result.put("prompt_token_ids", r.promptIds());
                result.put("token_ids", r.tokenIds());
                result.put("finish_reason", r.finishReason().name().toLowerCase());
                result.put("seed", used);
                Json.print(out, result);
            } else {
                out.println();
            }
        }
        return 0;
    }

    /** The --messages file: a JSON array of {role, content} objects. */
    static List<Map<String, Object>> readMessages(Path file) {
        if (!Files.isRegularFile(file)) throw new InvalidInputException(file + ": no such messages file");
        JsonNode json;
        try {
            json = new ObjectMapper().readTree(file.toFile());
        } catch (IOException e) {
            throw new InvalidInputException(file + ": not valid JSON (" + e.getMessage().lines().findFirst().orElse("") + ")");
        }
        try {
            return ChatTemplate.messages(json, "messages");
        } catch (InvalidInputException e) {
            throw new InvalidInputException(file + ": " + e.getMessage());
        }
    }
}
