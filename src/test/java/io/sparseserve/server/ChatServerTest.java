package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.ChatMessage;
import io.sparseserve.api.v1.FinishReason;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.engine.Engine;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The chat API on a real socket with the Llama 3 and Qwen2 fixtures: {@code /v1/chat/completions} (unary and SSE)
 * and gRPC {@code messages} generate reference.json's chat ids from the reference prompts; plain prompts get the
 * tokenizer's BOS and stop at generation_config's ids; template errors are 400 / INVALID_ARGUMENT with the
 * template's message; {@code /v1/models} lists the served name.
 */
class ChatServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @ParameterizedTest
    @ValueSource(strings = {TestData.TINY_LLAMA3, TestData.TINY_QWEN2})
    void chatCasesThroughHttpAndGrpc(String fixture) throws Exception {
        JsonNode ref = TestData.reference(fixture);
        try (ServerFixture s = new ServerFixture(TestData.fixture(fixture), Engine.Config.defaults(), "served-" + fixture)) {
            JsonNode models = JSON.readTree(s.get("/v1/models").body());
            assertEquals("served-" + fixture, models.path("data").path(0).path("id").asText());

            for (JsonNode c : ref.path("chat")) {
                int[] promptIds = TestData.ints(c.path("prompt_ids"));
                int[] want = TestData.ints(c.path("greedy_new_ids_ignoring_eos"));
                ObjectNode body = JSON.createObjectNode().put("model", "served-" + fixture).put("temperature", 0)
                        .put("max_tokens", want.length).put("ignore_eos", true).put("return_token_ids", true);
                body.set("messages", c.path("messages"));

                HttpResponse<String> r = s.post("/v1/chat/completions", body.toString());
                assertEquals(200, r.statusCode(), r.body());
                JsonNode out = JSON.readTree(r.body());
                assertEquals("chat.completion", out.path("object").asText());
                assertArrayEquals(promptIds, TestData.ints(out.path("prompt_token_ids")));
                JsonNode choice = out.path("choices").path(0);
                assertArrayEquals(want, TestData.ints(choice.path("token_ids")));
                assertEquals("assistant", choice.path("message").path("role").asText());
                assertEquals(s.tokenizer.decode(want), choice.path("message").path("content").asText());
                assertEquals("length", choice.path("finish_reason").asText());
                assertEquals(promptIds.length, out.path("usage").path("prompt_tokens").asInt());

                body.put("stream", true).set("stream_options", JSON.createObjectNode().put("include_usage", true));
                List<JsonNode> chunks = events(s.post("/v1/chat/completions", body.toString()));
                assertEquals("assistant", chunks.get(0).path("choices").path(0).path("delta").path("role").asText());
                List<Integer> streamed = new ArrayList<>();
                StringBuilder text = new StringBuilder();
                for (JsonNode chunk : chunks) {
                    assertEquals("chat.completion.chunk", chunk.path("object").asText());
                    for (JsonNode id : chunk.path("choices").path(0).path("token_ids")) streamed.add(id.asInt());
                    text.append(chunk.path("choices").path(0).path("delta").path("content").asText(""));
                }
                assertArrayEquals(want, streamed.stream().mapToInt(Integer::intValue).toArray());
                assertEquals(choice.path("message").path("content").asText(), text.toString());
                assertEquals("length", chunks.get(chunks.size() - 2).path("choices").path(0).path("finish_reason").asText());
                assertEquals(want.length, chunks.getLast().path("usage").path("completion_tokens").asInt());

                GenerateRequest.Builder grpc = GenerateRequest.newBuilder().setMaxNewTokens(want.length).setIgnoreEos(true);
                for (JsonNode m : c.path("messages")) {
                    grpc.addMessages(ChatMessage.newBuilder().setRole(m.path("role").asText()).setContent(m.path("content").asText()));
                }
                GenerateResponse unary = s.blocking().generate(grpc.build());
                assertArrayEquals(want, unary.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray());
                assertEquals(promptIds.length, unary.getUsage().getPromptTokens());
                List<Integer> ids = new ArrayList<>();
                for (Iterator<GenerateStreamResponse> it = s.blocking().generateStream(grpc.build()); it.hasNext(); ) {
                    ids.addAll(it.next().getTokenIdsList());
                }
                assertArrayEquals(want, ids.stream().mapToInt(Integer::intValue).toArray());
                System.out.printf("%s chat: http ids %s, sse ids %s, grpc ids %s, grpc stream ids %s (reference %s)%n", fixture,
                        choice.path("token_ids"), streamed, unary.getTokenIdsList(), ids, c.path("greedy_new_ids_ignoring_eos"));
            }

            // A plain prompt: the tokenizer's special tokens, and generation_config.json's stop ids.
            JsonNode g = ref.path("greedy");
            GenerateResponse plain = s.blocking().generate(GenerateRequest.newBuilder().setPrompt(g.path("prompt").asText())
                    .setMaxNewTokens(g.path("max_new_tokens").asInt()).build());
            assertArrayEquals(TestData.ints(ref.path("greedy_with_generation_config").path("new_ids")),
                    plain.getTokenIdsList().stream().mapToInt(Integer::intValue).toArray());
            assertEquals(FinishReason.EOS_TOKEN, plain.getFinishReason());
            assertEquals(g.path("prompt_ids").size(), plain.getUsage().getPromptTokens());
        }
    }

    @Test
    void logprobsCarryDecodedTokenText() throws Exception {
        try (ServerFixture s = new ServerFixture(TestData.fixture(TestData.TINY_LLAMA3), Engine.Config.defaults())) {
            String body = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": 3, \"temperature\": 0,"
                    + " \"logprobs\": true, \"top_logprobs\": 2, \"return_token_ids\": true}";
            JsonNode out = JSON.readTree(s.post("/v1/chat/completions", body).body());
            JsonNode choice = out.path("choices").path(0);
            JsonNode content = choice.path("logprobs").path("content");
            assertEquals(3, content.size());
            for (int i = 0; i < 3; i++) {
                int id = choice.path("token_ids").path(i).asInt();
                assertEquals(s.tokenizer.decode(new int[] {id}), content.path(i).path("token").asText());
                assertEquals(2, content.path(i).path("top_logprobs").size());
                assertTrue(content.path(i).path("logprob").asDouble() <= 0);
            }
        }
    }

    @Test
    void templateErrorsAreTheClientsWithTheTemplatesMessage() throws Exception {
        JsonNode err = TestData.reference(TestData.TINY_LLAMA3).path("chat_template_error");
        try (ServerFixture s = new ServerFixture(TestData.fixture(TestData.TINY_LLAMA3), Engine.Config.defaults())) {
            ObjectNode body = JSON.createObjectNode();
            body.set("messages", err.path("messages"));
            HttpResponse<String> r = s.post("/v1/chat/completions", body.toString());
            assertEquals(400, r.statusCode());
            assertEquals(err.path("error").asText(), JSON.readTree(r.body()).path("error").path("message").asText());

            GenerateRequest.Builder grpc = GenerateRequest.newBuilder();
            for (JsonNode m : err.path("messages")) {
                grpc.addMessages(ChatMessage.newBuilder().setRole(m.path("role").asText()).setContent(m.path("content").asText()));
            }
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> s.blocking().generate(grpc.build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
            assertEquals(err.path("error").asText(), e.getStatus().getDescription());
            StatusRuntimeException both = assertThrows(StatusRuntimeException.class,
                    () -> s.blocking().generate(grpc.setPrompt("x").build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, both.getStatus().getCode());

            ArrayNode bad = JSON.createArrayNode().add(JSON.createObjectNode().put("content", "no role"));
            body.set("messages", bad);
            r = s.post("/v1/chat/completions", body.toString());
            assertEquals(400, r.statusCode());
            assertEquals("messages[0].role must be a string", JSON.readTree(r.body()).path("error").path("message").asText());
            assertEquals(200, s.get("/healthz").statusCode()); // still serving
        }
        try (ServerFixture s = new ServerFixture(TestData.fixture(TestData.TINY_LLAMA), Engine.Config.defaults())) {
            HttpResponse<String> r = s.post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}");
            assertEquals(400, r.statusCode());
            assertTrue(r.body().contains("no chat template"), r.body());
        }
    }

    /** The data lines of an SSE body, which must end with [DONE]. */
    private static List<JsonNode> events(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        List<String> data = r.body().lines().filter(l -> l.startsWith("data: ")).map(l -> l.substring(6)).toList();
        assertEquals("[DONE]", data.getLast());
        List<JsonNode> out = new ArrayList<>();
        for (String d : data.subList(0, data.size() - 1)) out.add(JSON.readTree(d));
        return out;
    }
}
