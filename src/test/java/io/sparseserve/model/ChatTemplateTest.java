package io.sparseserve.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.sparseserve.TestData;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.LocalDate;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Chat templates rendered by Jinjava equal Python jinja2's rendering: the fixtures' templates against the prompts
 * of their reference.json, and templates of our own using the features of the published Llama 3.1 and Qwen2.5
 * templates (tool calls, namespace, loop controls, tojson, slices, trim) against src/test/resources/chat/
 * expected.json, which make_expected.py renders with jinja2 set up as transformers sets it up.
 */
class ChatTemplateTest {
    private static final Path CHAT = Path.of("src/test/resources/chat");

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void fixtureTemplatesRenderTheReferencePromptsAndIds(String fixture) {
        Path dir = TestData.fixture(fixture);
        ChatTemplate template = ChatTemplate.load(dir);
        JsonNode chat = TestData.reference(fixture).path("chat");
        assertTrue(chat.size() >= 2);
        try (Tokenizer tok = Tokenizer.load(dir.resolve("tokenizer.json"))) {
            for (JsonNode c : chat) {
                String prompt = template.render(ChatTemplate.messages(c.path("messages"), "messages"), null,
                        c.path("add_generation_prompt").asBoolean());
                assertEquals(c.path("prompt").asText(), prompt);
                assertArrayEquals(TestData.ints(c.path("prompt_ids")), tok.encode(prompt));
            }
        }
    }

    @Test
    void fixtureTemplateRefusesWithItsOwnMessage() {
        JsonNode ref = TestData.reference(TestData.TINY_LLAMA3).path("chat_template_error");
        ChatTemplate template = ChatTemplate.load(TestData.fixture(TestData.TINY_LLAMA3));
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> template.render(ChatTemplate.messages(ref.path("messages"), "messages"), null, true));
        assertEquals(ref.path("error").asText(), e.getMessage());
    }

    @Test
    void ownTemplatesMatchJinja2() throws IOException {
        JsonNode cases = TestData.json(CHAT.resolve("conversations.json"));
        JsonNode expected = TestData.json(CHAT.resolve("expected.json"));
        assertEquals(cases.size(), expected.size());
        for (int i = 0; i < cases.size(); i++) {
            JsonNode c = cases.get(i);
            ChatTemplate t = new ChatTemplate(Files.readString(CHAT.resolve(c.path("template").asText())), null,
                    Map.of("bos_token", "<s>"));
            @SuppressWarnings("unchecked")
            List<Object> tools = c.has("tools") ? (List<Object>) ChatTemplate.plain(c.get("tools")) : null;
            List<Map<String, Object>> messages = ChatTemplate.messages(c.path("messages"), "messages");
            boolean gen = c.path("add_generation_prompt").asBoolean();
            if (expected.get(i).has("error")) {
                InvalidInputException e = assertThrows(InvalidInputException.class, () -> t.render(messages, tools, gen));
                assertEquals(expected.get(i).path("error").asText(), e.getMessage(), "case " + i);
            } else {
                assertEquals(expected.get(i).path("prompt").asText(), t.render(messages, tools, gen), "case " + i);
            }
        }
    }

    @Test
    void strftimeNowFormatsTodayAsPython() {
        ChatTemplate t = new ChatTemplate("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d') }}", null, Map.of());
        LocalDate before = LocalDate.now();
        String out = t.render(List.of(), null, false);
        LocalDate after = LocalDate.now();
        String[] parts = out.split("\\|");
        DateTimeFormatter f = DateTimeFormatter.ofPattern("dd MMM yyyy", Locale.ENGLISH);
        assertTrue(parts[0].equals(before.format(f)) || parts[0].equals(after.format(f)), out);
        assertTrue(parts[1].equals(before.toString()) || parts[1].equals(after.toString()), out);
    }

    @Test
    void malformedTemplatesAreOneLineErrors() {
        for (String source : new String[] {"{% for m in messages %}{{ m.content }}", "{{ messages[0].content + }}", "{% endfor %}",
                "{% if %}x{% endif %}"}) {
            ChatTemplate t = new ChatTemplate(source, null, Map.of());
            InvalidInputException e = assertThrows(InvalidInputException.class,
                    () -> t.render(List.of(ChatTemplate.message("user", "hi")), null, true), source);
            assertTrue(e.getMessage().startsWith("chat template error"), e.getMessage());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void messagesAreChecked() {
        assertThrows(InvalidInputException.class, () -> ChatTemplate.messages(TestData.jsonText("[]"), "messages"));
        InvalidInputException e = assertThrows(InvalidInputException.class,
                () -> ChatTemplate.messages(TestData.jsonText("[{\"content\": \"x\"}]"), "messages"));
        assertEquals("messages[0].role must be a string", e.getMessage());
        List<Map<String, Object>> parts = ChatTemplate.messages(TestData.jsonText(
                "[{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}]"),
                "messages");
        assertEquals("a\nb", parts.get(0).get("content"));
    }

    @Test
    void pythonFloatRepr() {
        assertEquals("1e-05", PythonJson.floatRepr(1e-5));
        assertEquals("0.0001", PythonJson.floatRepr(1e-4));
        assertEquals("1e+16", PythonJson.floatRepr(1e16));
        assertEquals("1234567890123456.0", PythonJson.floatRepr(1234567890123456.0));
        assertEquals("-2.5", PythonJson.floatRepr(-2.5));
        assertEquals("100.0", PythonJson.floatRepr(100));
        assertEquals("{\"a\": [1, 2.0, \"\\u0001\"], \"b\": {}}", PythonJson.dumps(Map.of("a", List.of(1, 2.0, "\u0001"), "b", Map.of()).entrySet().stream()
                .sorted(Map.Entry.comparingByKey()).collect(java.util.stream.Collectors.toMap(Map.Entry::getKey, Map.Entry::getValue, (x, y) -> x,
                        java.util.LinkedHashMap::new)), null));
    }
}
