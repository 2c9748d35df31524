package io.sparseserve.model;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/**
 * The default end-of-sequence set of a folder, as vLLM builds it: {@code config.json}'s {@code eos_token_id}, plus
 * {@code generation_config.json}'s (a number or a list; Llama 3 Instruct lists {@code <|eot_id|>} only there), plus
 * the id of {@code tokenizer_config.json}'s {@code eos_token}.
 */
final class StopTokens {
    static final String GENERATION_CONFIG = "generation_config.json";

    private StopTokens() {}

    static int[] defaults(Path dir, ModelConfig config, TokenizerConfig tokenizerConfig) {
        Set<Integer> ids = new LinkedHashSet<>();
        for (int id : config.eosTokenIds()) ids.add(id);
        Path gen = dir.resolve(GENERATION_CONFIG);
        if (Files.isRegularFile(gen)) {
            JsonNode eos = TokenizerConfig.readJson(gen).path("eos_token_id");
            if (eos.isArray()) {
                for (JsonNode id : eos) ids.add(tokenId(gen, id));
            } else if (!eos.isMissingNode() && !eos.isNull()) {
                ids.add(tokenId(gen, eos));
            }
        }
        String eosToken = tokenizerConfig.token("eos_token");
        Path tokenizerJson = dir.resolve("tokenizer.json");
        if (eosToken != null && Files.isRegularFile(tokenizerJson)) {
            Integer id = idOf(TokenizerConfig.readJson(tokenizerJson), eosToken);
            if (id != null) ids.add(id);
        }
        return ids.stream().mapToInt(Integer::intValue).toArray();
    }

    private static int tokenId(Path file, JsonNode n) {
        if (!n.canConvertToInt() || !n.isIntegralNumber() || n.asInt() < 0) {
            throw new ModelFormatException(file, "field 'eos_token_id' holds " + n + ", not a token id");
        }
        return n.asInt();
    }

    /** The id of a token's text: an added token's, else the model vocabulary's (BPE, WordPiece). */
    private static Integer idOf(JsonNode tokenizer, String token) {
        for (JsonNode added : tokenizer.path("added_tokens")) {
            if (token.equals(added.path("content").asText(null))) return added.path("id").asInt();
        }
        JsonNode v = tokenizer.path("model").path("vocab").path(token);
        return v.canConvertToInt() ? v.asInt() : null;
    }
}
