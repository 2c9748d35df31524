package io.sparseserve.loadtest;

import java.util.List;
import java.util.SplittableRandom;

/**
 * Random bodies for /v1/completions: broken JSON, JSON of the wrong shape, and objects whose known fields hold values
 * of random types. {@code max_tokens} is always present and never asks for more than 4 tokens when it is valid, so
 * the fuzz costs the server at most 4 decode steps per accepted request.
 */
final class JsonFuzz {
    private static final List<String> FIELDS = List.of("prompt", "temperature", "top_p", "top_k", "seed", "stop", "stream",
            "logprobs", "echo", "n", "model", "min_tokens", "ignore_eos", "stop_token_ids", "stream_options", "user",
            "repetition_penalty", "presence_penalty", "frequency_penalty", "logit_bias", "suffix", "best_of");
    private static final List<String> MAX_TOKENS = List.of("-1", "0", "1", "2", "4", "\"4\"", "4.5", "true", "null",
            "[]", "{}", "-9223372036854775809", "1e400");

    private JsonFuzz() {}

    static String body(SplittableRandom r) {
        return switch (r.nextInt(10)) {
            case 0 -> randomText(r);
            case 1 -> truncate(object(r), r);
            case 2 -> value(r, 3);
            default -> object(r);
        };
    }

    private static String object(SplittableRandom r) {
        StringBuilder b = new StringBuilder("{\"max_tokens\":").append(MAX_TOKENS.get(r.nextInt(MAX_TOKENS.size())));
        if (r.nextInt(4) != 0) b.append(",\"prompt\":").append(r.nextInt(3) == 0 ? value(r, 2) : string(r));
        for (int i = r.nextInt(5); i > 0; i--) {
            b.append(",\"").append(FIELDS.get(r.nextInt(FIELDS.size()))).append("\":").append(value(r, 2));
        }
        // min_tokens above 4 would outvote max_tokens on a lenient server: keep the cap honest.
        return b.append(",\"min_tokens\":0}").toString();
    }

    private static String value(SplittableRandom r, int depth) {
        int kind = r.nextInt(depth > 0 ? 9 : 7);
        return switch (kind) {
            case 0 -> "null";
            case 1 -> r.nextBoolean() ? "true" : "false";
            case 2 -> Integer.toString(r.nextInt(-3, 5));
            case 3 -> Double.toString(r.nextDouble(-2, 3));
            case 4 -> string(r);
            case 5 -> "1e" + r.nextInt(-400, 400);
            case 6 -> "\"\\ud800\"";
            case 7 -> "[" + value(r, depth - 1) + "," + value(r, depth - 1) + "]";
            default -> "{\"" + FIELDS.get(r.nextInt(FIELDS.size())) + "\":" + value(r, depth - 1) + "}";
        };
    }

    private static String string(SplittableRandom r) {
        StringBuilder b = new StringBuilder("\"");
        for (int i = r.nextInt(40); i > 0; i--) {
            int c = r.nextInt(0x20, 0x3000);
            if (c == '"' || c == '\\' || Character.isSurrogate((char) c)) c = 'x';
            b.append((char) c);
        }
        return b.append('"').toString();
    }

    private static String randomText(SplittableRandom r) {
        StringBuilder b = new StringBuilder();
        String alphabet = "{}[]\":,0123456789.eE+-truefalsn \\\u00e9\u0000";
        for (int i = r.nextInt(200); i > 0; i--) b.append(alphabet.charAt(r.nextInt(alphabet.length())));
        return b.toString();
    }

    private static String truncate(String s, SplittableRandom r) {
        return s.substring(0, r.nextInt(s.length()));
    }
}
