package io.sparseserve.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The parts of a folder's {@code tokenizer_config.json} that serving needs: the named special tokens
 * ({@code bos_token}, {@code eos_token}, {@code pad_token}, ...; a string or an AddedToken object with a
 * {@code content}) and the chat template. Like transformers, a {@code chat_template.jinja} file beside it wins over
 * the {@code chat_template} field; a field holding a list of named templates gives the one named {@code default}.
 * Every file is optional: a folder without them has no special tokens by name and no template.
 *
 * @param specialTokens token name (e.g. {@code eos_token}) to its text
 * @param chatTemplate the Jinja source, or null
 * @param templateFile where the template came from (for messages), or null
 */
public record TokenizerConfig(Map<String, String> specialTokens, String chatTemplate, Path templateFile) {
    public static final String FILE_NAME = "tokenizer_config.json";
    public static final String TEMPLATE_FILE_NAME = "chat_template.jinja";

    public TokenizerConfig {
        specialTokens = Map.copyOf(specialTokens);
    }

    public static TokenizerConfig read(Path dir) {
        Path file = dir.resolve(FILE_NAME);
        Map<String, String> special = new LinkedHashMap<>();
        String template = null;
        Path templateFile = null;
        if (Files.isRegularFile(file)) {
            JsonNode root = readJson(file);
            for (Map.Entry<String, JsonNode> e : root.properties()) {
                if (!e.getKey().endsWith("_token")) continue;
                JsonNode v = e.getValue();
                String text = v.isTextual() ? v.asText() : v.path("content").isTextual() ? v.path("content").asText() : null;
                if (text != null) special.put(e.getKey(), text);
            }
            template = template(file, root.get("chat_template"));
            if (template != null) templateFile = file;
        }
        Path jinja = dir.resolve(TEMPLATE_FILE_NAME);
        if (Files.isRegularFile(jinja)) {
            try {
                template = Files.readString(jinja, StandardCharsets.UTF_8);
                templateFile = jinja;
            } catch (IOException e) {
                throw new ModelFormatException(jinja, "cannot be read: " + e.getMessage());
            }
        }
        return new TokenizerConfig(special, template, templateFile);
    }

    /** The text of a named special token ({@code eos_token}), or null. */
    public String token(String name) {
        return specialTokens.get(name);
    }

    private static String template(Path file, JsonNode n) {
        if (n == null || n.isNull()) return null;
        if (n.isTextual()) return n.asText();
        if (n.isArray()) {
            for (JsonNode named : n) {
                if ("default".equals(named.path("name").asText()) && named.path("template").isTextual()) {
                    return named.path("template").asText();
                }
            }
            throw new ModelFormatException(file, "field 'chat_template' lists templates but none named 'default'");
        }
        throw new ModelFormatException(file, "field 'chat_template' must be a string or a list of {name, template}");
    }

    static JsonNode readJson(Path file) {
        try {
            JsonNode root = new ObjectMapper().readTree(file.toFile());
            if (root == null || !root.isObject()) throw new ModelFormatException(file, "not a JSON object");
            return root;
        } catch (IOException e) {
            throw new ModelFormatException(file, "not valid JSON: " + e.getMessage().lines().findFirst().orElse(""));
        }
    }
}
