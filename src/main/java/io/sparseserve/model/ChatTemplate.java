package io.sparseserve.model;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.hubspot.jinjava.Jinjava;
import com.hubspot.jinjava.JinjavaConfig;
import com.hubspot.jinjava.LegacyOverrides;
import com.hubspot.jinjava.interpret.JinjavaInterpreter;
import com.hubspot.jinjava.interpret.RenderResult;
import com.hubspot.jinjava.interpret.TemplateError;
import com.hubspot.jinjava.lib.filter.Filter;
import com.hubspot.jinjava.lib.fn.ELFunctionDefinition;
import com.hubspot.jinjava.objects.date.StrftimeFormatter;
import java.nio.file.Path;
import java.time.ZonedDateTime;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A model's chat template rendered as transformers renders it ({@code apply_chat_template}), with Jinjava: the
 * environment has {@code trim_blocks} and {@code lstrip_blocks} on, {@code {{-}}/{@code -}}} trim around expressions
 * as in Jinja, and the globals and filters transformers adds: {@code raise_exception(message)},
 * {@code strftime_now(format)}, {@code tojson} with Python's {@code json.dumps} output ({@link PythonJson}), and
 * {@code trim} as Python's {@code str.strip}. Loop controls ({@code break}, {@code continue}) and {@code namespace}
 * are Jinjava's own. The context has {@code messages}, {@code tools} (when given), {@code add_generation_prompt} and
 * the tokenizer's named special tokens ({@code bos_token}, {@code eos_token}, ...).
 *
 * <p>Any error (a syntax error, an unknown filter, a call of {@code raise_exception}) is the request's error: an
 * {@link InvalidInputException} with the template's own message. Rendering is thread-safe.
 */
public final class ChatTemplate {
    /** Rendered prompts larger than this are refused (a runaway template must not fill the heap). */
    static final long MAX_OUTPUT_CHARS = 16L << 20;

    private static final ObjectMapper JSON = new ObjectMapper();

    private final String source;
    private final Path file;
    private final Map<String, String> specialTokens;
    private final Jinjava jinjava;

    public ChatTemplate(String source, Path file, Map<String, String> specialTokens) {
        this.source = source;
        this.file = file;
        this.specialTokens = Map.copyOf(specialTokens);
        this.jinjava = new Jinjava(JinjavaConfig.newBuilder()
                .withTrimBlocks(true)
                .withLstripBlocks(true)
                .withMaxOutputSize(MAX_OUTPUT_CHARS)
                .withLegacyOverrides(LegacyOverrides.newBuilder()
                        .withUseTrimmingForNotesAndExpressions(true) // {{- x -}} trims as in Jinja
                        .withParseWhitespaceControlStrictly(true)
                        .withUseNaturalOperatorPrecedence(true)
                        .withEvaluateMapKeys(true) // {k: v} evaluates k, as Jinja does
                        .withIterateOverMapKeys(true) // {% for k in dict %} gives keys, as Jinja does
                        .withKeepNullableLoopValues(true)
                        .withHandleBackslashInQuotesOnly(true)
                        .build())
                .build());
        var globals = jinjava.getGlobalContext();
        globals.registerFunction(new ELFunctionDefinition("", "raise_exception", ChatTemplate.class, "raiseException", String.class));
        globals.registerFunction(new ELFunctionDefinition("", "strftime_now", ChatTemplate.class, "strftimeNow", String.class));
        globals.registerFilter(new ToJson());
        globals.registerFilter(new Strip());
    }

    /** The folder's template (chat_template.jinja or tokenizer_config.json), or null when it has none. */
    public static ChatTemplate load(Path dir) {
        TokenizerConfig tc = TokenizerConfig.read(dir);
        return tc.chatTemplate() == null ? null : new ChatTemplate(tc.chatTemplate(), tc.templateFile(), tc.specialTokens());
    }

    public Path file() {
        return file;
    }

    /**
     * The prompt for {@code messages} (each a map with at least {@code role}; see {@link #messages}), with the
     * assistant turn opened when {@code addGenerationPrompt}. {@code tools} may be null.
     */
    public String render(List<Map<String, Object>> messages, List<Object> tools, boolean addGenerationPrompt) {
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", messages);
        if (tools != null) context.put("tools", tools);
        context.put("add_generation_prompt", addGenerationPrompt);
        RenderResult result = jinjava.renderForResult(source, context);
        // Any error fails the render, as in Jinja (where an unknown filter is a compile-time error, for instance).
        for (TemplateError e : result.getErrors()) {
            for (Throwable t = e.getException(); t != null; t = t.getCause()) {
                if (t instanceof Raised r) throw new InvalidInputException(r.getMessage());
            }
            throw new InvalidInputException("chat template error (line " + e.getLineno() + "): " + e.getMessage());
        }
        return result.getOutput();
    }

    /**
     * The messages of an OpenAI-style {@code messages} JSON array, checked and converted for the template: every
     * element an object with a string {@code role}; a {@code content} that is a list of text parts is joined into one
     * string (as vLLM does for string-content templates), any other content is passed as it is (a tool's result may
     * be an object); the tool-call {@code arguments}
     * that OpenAI sends as a JSON string parsed into an object (as vLLM does, so templates can iterate them).
     */
    public static List<Map<String, Object>> messages(JsonNode array, String field) {
        if (array == null || !array.isArray() || array.isEmpty()) {
            throw new InvalidInputException(field + " must be a non-empty array of {role, content} objects");
        }
        List<Map<String, Object>> out = new ArrayList<>(array.size());
        for (int i = 0; i < array.size(); i++) {
            JsonNode m = array.get(i);
            String where = field + "[" + i + "]";
            if (!m.isObject()) throw new InvalidInputException(where + " must be an object with role and content");
            if (!m.path("role").isTextual()) throw new InvalidInputException(where + ".role must be a string");
            @SuppressWarnings("unchecked")
            Map<String, Object> msg = (Map<String, Object>) plain(m);
            JsonNode content = m.get("content");
            if (content != null && content.isArray()) {
                StringBuilder text = new StringBuilder();
                for (JsonNode part : content) {
                    if (!part.path("text").isTextual()) {
                        throw new InvalidInputException(where + ".content: only text parts are supported, got " + part.path("type"));
                    }
                    if (!text.isEmpty()) text.append('\n');
                    text.append(part.path("text").asText());
                }
                msg.put("content", text.toString());
            }
            if (msg.get("tool_calls") instanceof List<?> calls) {
                for (Object call : calls) {
                    if (call instanceof Map<?, ?> c && c.get("function") instanceof Map<?, ?> fn
                            && fn.get("arguments") instanceof String args) {
                        try {
                            @SuppressWarnings("unchecked")
                            Map<Object, Object> f = (Map<Object, Object>) fn;
                            f.put("arguments", plain(JSON.readTree(args)));
                        } catch (JsonProcessingException e) {
                            // Not JSON: the template sees the string as sent.
                        }
                    }
                }
            }
            out.add(msg);
        }
        return out;
    }

    /** A simple message (gRPC's fields, the CLI's file) as the template sees it. */
    public static Map<String, Object> message(String role, String content) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        m.put("content", content);
        return m;
    }

    /** JSON as plain Java values (ordered maps, lists, strings, numbers, booleans, null). */
    public static Object plain(JsonNode n) {
        if (n == null || n.isNull() || n.isMissingNode()) return null;
        if (n.isObject()) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (Map.Entry<String, JsonNode> e : n.properties()) m.put(e.getKey(), plain(e.getValue()));
            return m;
        }
        if (n.isArray()) {
            List<Object> l = new ArrayList<>(n.size());
            for (JsonNode x : n) l.add(plain(x));
            return l;
        }
        if (n.isTextual()) return n.asText();
        if (n.isBoolean()) return n.asBoolean();
        if (n.isIntegralNumber()) return n.canConvertToLong() ? (Object) n.asLong() : n.bigIntegerValue();
        if (n.isNumber()) return n.asDouble();
        return n.asText();
    }

    /** transformers' {@code raise_exception}: the template refuses its input with this message. */
    public static String raiseException(String message) {
        throw new Raised(message);
    }

    /** transformers' {@code strftime_now}: the local time now, formatted with Python's strftime directives. */
    public static String strftimeNow(String format) {
        return StrftimeFormatter.format(ZonedDateTime.now(), format, Locale.ENGLISH);
    }

    private static final class Raised extends RuntimeException {
        Raised(String message) {
            super(message, null, false, false);
        }
    }

    /** {@code x | tojson} and {@code x | tojson(indent=2)} as transformers' Python json.dumps. */
    private static final class ToJson implements Filter {
        @Override
        public String getName() {
            return "tojson";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            return PythonJson.dumps(var, args.length > 0 ? Integer.valueOf(args[0].trim()) : null);
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, Object[] args, Map<String, Object> kwargs) {
            Object indent = kwargs.containsKey("indent") ? kwargs.get("indent") : args.length > 0 ? args[0] : null;
            return PythonJson.dumps(var, indent instanceof Number n ? n.intValue() : null);
        }
    }

    /** {@code trim} as Python's {@code str.strip()}: every Unicode whitespace, not only chars up to U+0020. */
    private static final class Strip implements Filter {
        @Override
        public String getName() {
            return "trim";
        }

        @Override
        public Object filter(Object var, JinjavaInterpreter interpreter, String... args) {
            if (var == null) return "";
            String s = var.toString();
            int from = 0, to = s.length();
            while (from < to && isPythonSpace(s.charAt(from))) from++;
            while (to > from && isPythonSpace(s.charAt(to - 1))) to--;
            return s.substring(from, to);
        }

        /** Python's str.isspace for one char: Unicode White_Space plus the separators U+001C..U+001F. */
        private static boolean isPythonSpace(char c) {
            return Character.isWhitespace(c) || Character.isSpaceChar(c) || (c >= 0x1c && c <= 0x1f) || c == 0x85;
        }
    }
}
