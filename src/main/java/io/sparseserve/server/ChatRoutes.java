package io.sparseserve.server;

import static io.sparseserve.server.HttpCalls.event;
import static io.sparseserve.server.HttpCalls.finishReason;
import static io.sparseserve.server.HttpCalls.json;
import static io.sparseserve.server.HttpCalls.usage;
import static io.sparseserve.server.JsonFields.bool;
import static io.sparseserve.server.JsonFields.integer;
import static io.sparseserve.server.JsonFields.longValue;
import static io.sparseserve.server.JsonFields.number;
import static io.sparseserve.server.JsonFields.stopStrings;
import static io.sparseserve.server.JsonFields.stopTokenIds;
import static io.sparseserve.server.JsonFields.string;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.sparseserve.engine.GenerationRequest;
import io.sparseserve.engine.SamplingParams;
import io.sparseserve.engine.Seeds;
import io.sparseserve.engine.TokenSink;
import io.sparseserve.engine.TopLogprobs;
import io.sparseserve.model.ChatTemplate;
import io.sparseserve.model.InvalidInputException;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * OpenAI-compatible {@code POST /v1/chat/completions}: the messages go through the model's chat template
 * ({@link ChatTemplate}, assistant turn opened) and are tokenized without adding special tokens. The OpenAI fields
 * (max_tokens or max_completion_tokens, temperature, top_p, seed, stop, stream with {@code chat.completion.chunk}
 * deltas and {@code [DONE]}, stream_options.include_usage, logprobs and top_logprobs with decoded token text, tools
 * passed to the template), vLLM's extras (top_k, min_p, repetition_penalty, min_tokens, ignore_eos,
 * stop_token_ids, skip_special_tokens, add_generation_prompt, return_token_ids). Defaults are OpenAI's
 * (temperature 1; max_tokens: what the context leaves after the prompt). Errors are OpenAI-shaped, a template's
 * error with its own message (400).
 */
final class ChatRoutes {
    private static final int MAX_BODY_BYTES = 4 << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Serving serving;
    private final HttpCalls calls;
    private final AtomicLong ids = new AtomicLong();

    ChatRoutes(Serving serving) {
        this.serving = serving;
        this.calls = new HttpCalls(serving);
    }

    void mount(Router router) {
        router.post("/v1/chat/completions").handler(BodyHandler.create(false).setBodyLimit(MAX_BODY_BYTES));
        router.post("/v1/chat/completions").handler(this::chat);
    }

    /** What a request asks for besides the engine request: how to answer. */
    private record Shape(boolean stream, boolean includeUsage, boolean logprobs, boolean returnTokenIds) {}

    /** A request as parsed from the body: what the engine runs, and how to answer. */
    private record Parsed(GenerationRequest request, Shape shape) {}

    private void chat(RoutingContext rc) {
        AccessLog.Entry entry = calls.begin(rc, "POST /v1/chat/completions");
        // Rendering the template and tokenizing a long conversation happen on the tokenizer pool, not the event loop.
        calls.accept(rc, entry, body -> parse(body, entry), (response, parsed) -> start(response, parsed, entry));
    }

    private Parsed parse(JsonObject body, AccessLog.Entry entry) {
        try {
            JsonObject options = body.getValue("stream_options") instanceof JsonObject o ? o : new JsonObject();
            Shape shape = new Shape(bool(body, "stream", false), bool(options, "include_usage", false),
                    bool(body, "logprobs", false), bool(body, "return_token_ids", false));
            return new Parsed(toEngine(body, shape, entry.requestId()), shape);
        } catch (InvalidInputException e) {
            throw e;
        } catch (RuntimeException e) { // a field of an unexpected JSON type that a check missed
            throw new InvalidInputException("the body is not a valid chat completion request: " + e.getMessage());
        }
    }

    private void start(HttpServerResponse response, Parsed parsed, AccessLog.Entry entry) {
        GenerationRequest request = parsed.request();
        Shape shape = parsed.shape();
        String id = "chatcmpl-" + ids.incrementAndGet();
        long created = System.currentTimeMillis() / 1000;
        ContextSink sink = shape.stream() ? streamingSink(id, created, response, shape, entry)
                : unarySink(id, created, response, shape, request, entry);
        if (calls.submit(response, entry, request, sink, shape.stream()) && shape.stream()) {
            // OpenAI's first chunk carries the role.
            event(response, chunk(id, created, choice(new JsonObject().put("role", "assistant").put("content", ""), null)));
        }
    }

    private ContextSink unarySink(String id, long created, HttpServerResponse response, Shape shape, GenerationRequest request,
            AccessLog.Entry entry) {
        StringBuilder text = new StringBuilder();
        List<TopLogprobs> logprobs = new ArrayList<>();
        List<Integer> tokenIds = new ArrayList<>();
        return new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
            @Override
            public void delta(TokenSink.Delta d) {
                text.append(d.text());
                logprobs.addAll(d.logprobs());
                for (int t : d.tokenIds()) tokenIds.add(t);
            }

            @Override
            public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                delta(last);
                JsonObject choice = new JsonObject().put("index", 0)
                        .put("message", new JsonObject().put("role", "assistant").put("content", text.toString()))
                        .put("logprobs", shape.logprobs() ? logprobsJson(logprobs) : null)
                        .put("finish_reason", finishReason(f));
                if (shape.returnTokenIds()) choice.put("token_ids", new JsonArray(new ArrayList<Object>(tokenIds)));
                JsonObject body = new JsonObject().put("id", id).put("object", "chat.completion").put("created", created)
                        .put("model", serving.modelId()).put("choices", new JsonArray().add(choice)).put("usage", usage(f));
                if (shape.returnTokenIds()) body.put("prompt_token_ids", ids(request.promptIds()));
                json(response, 200, body.put("seed", entry.seed()));
                serving.metrics().requestCompleted("ok", f.reason().name());
                entry.finished("200", f);
            }

            @Override
            public void error(Throwable e) {
                calls.failed(response, entry, e, "chat completion failed");
            }
        });
    }

    private ContextSink streamingSink(String id, long created, HttpServerResponse response, Shape shape, AccessLog.Entry entry) {
        ContextSink[] self = new ContextSink[1];
        self[0] = new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
            @Override
            public void delta(TokenSink.Delta d) {
                if (d.text().isEmpty() && !shape.logprobs() && !shape.returnTokenIds()) return;
                event(response, chunk(id, created, new JsonObject().put("content", d.text()), d, null));
                calls.afterWrite(response, self[0], entry);
            }

            @Override
            public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                JsonObject delta = last.text().isEmpty() ? new JsonObject() : new JsonObject().put("content", last.text());
                event(response, chunk(id, created, delta, last, finishReason(f)).put("seed", entry.seed()));
                if (shape.includeUsage()) {
                    event(response, new JsonObject().put("id", id).put("object", "chat.completion.chunk").put("created", created)
                            .put("model", serving.modelId()).put("choices", new JsonArray()).put("usage", usage(f)));
                }
                response.end("data: [DONE]\n\n");
                serving.metrics().requestCompleted("ok", f.reason().name());
                entry.finished("200", f);
            }

            @Override
            public void error(Throwable e) {
                calls.streamFailed(response, entry, e, "chat completion failed");
            }

            private JsonObject chunk(String id, long created, JsonObject delta, TokenSink.Delta d, String finishReason) {
                JsonObject choice = ChatRoutes.choice(delta, finishReason)
                        .put("logprobs", shape.logprobs() ? logprobsJson(d.logprobs()) : null);
                if (shape.returnTokenIds()) choice.put("token_ids", ids(d.tokenIds()));
                return ChatRoutes.this.chunk(id, created, choice);
            }
        });
        return self[0];
    }

    private JsonObject chunk(String id, long created, JsonObject choice) {
        return new JsonObject().put("id", id).put("object", "chat.completion.chunk").put("created", created)
                .put("model", serving.modelId()).put("choices", new JsonArray().add(choice));
    }

    private static JsonObject choice(JsonObject delta, String finishReason) {
        return new JsonObject().put("index", 0).put("delta", delta).put("logprobs", null).put("finish_reason", finishReason);
    }

    private GenerationRequest toEngine(JsonObject b, Shape shape, String requestId) {
        String model = string(b, "model", null);
        if (model != null && !model.equals(serving.modelId())) {
            throw new InvalidInputException("model '" + model + "' is not served here (this server serves '" + serving.modelId() + "')");
        }
        if (integer(b, "n", 1) != 1) throw new InvalidInputException("n must be 1");
        if (!(b.getValue("messages") instanceof JsonArray messages)) {
            throw new InvalidInputException("messages must be a non-empty array of {role, content} objects");
        }
        Object toolsValue = b.getValue("tools");
        if (toolsValue != null && !(toolsValue instanceof JsonArray)) throw new InvalidInputException("tools must be an array");
        int[] ids;
        try {
            @SuppressWarnings("unchecked")
            List<Object> tools = toolsValue == null ? null : (List<Object>) ChatTemplate.plain(JSON.readTree(((JsonArray) toolsValue).encode()));
            ids = serving.requests().chatPromptIds(ChatTemplate.messages(JSON.readTree(messages.encode()), "messages"), tools,
                    bool(b, "add_generation_prompt", true));
        } catch (JsonProcessingException e) {
            throw new InvalidInputException("messages: " + e.getOriginalMessage());
        }
        int topK = integer(b, "top_k", 0);
        SamplingParams sampling = new SamplingParams(number(b, "temperature", 1f), topK == -1 ? 0 : topK,
                number(b, "top_p", 1f), number(b, "min_p", 0f), number(b, "repetition_penalty", 1f),
                number(b, "presence_penalty", 0f), number(b, "frequency_penalty", 0f),
                b.getValue("seed") == null ? Seeds.fresh() : longValue(b, "seed", 0L));
        List<String> stop = stopStrings(b);
        int[] stopTokenIds = stopTokenIds(b);
        int logprobs = -1;
        if (shape.logprobs()) {
            logprobs = integer(b, "top_logprobs", 0);
            if (logprobs < 0 || logprobs > GenerationRequest.MAX_LOGPROBS) {
                throw new InvalidInputException("top_logprobs must be in [0, " + GenerationRequest.MAX_LOGPROBS + "], got " + logprobs);
            }
        } else if (b.getValue("top_logprobs") != null) {
            throw new InvalidInputException("top_logprobs needs logprobs: true");
        }
        // OpenAI: max_completion_tokens replaces the deprecated max_tokens; unset, the context bounds the answer.
        int context = serving.modelInfo().getContextLength();
        int maxTokens = b.getValue("max_completion_tokens") != null ? integer(b, "max_completion_tokens", 0)
                : integer(b, "max_tokens", Math.max(1, context - ids.length));
        string(b, "user", ""); // accepted (OpenAI's end-user label), type-checked, not used
        return new GenerationRequest(requestId, ids, sampling, maxTokens, integer(b, "min_tokens", 0), stop,
                stopTokenIds, bool(b, "ignore_eos", false), logprobs, bool(b, "skip_special_tokens", true));
    }

    /** OpenAI's chat logprobs: per token its decoded text, log-probability, UTF-8 bytes and the top alternatives. */
    private JsonObject logprobsJson(List<TopLogprobs> list) {
        JsonArray content = new JsonArray();
        for (TopLogprobs lp : list) {
            JsonArray top = new JsonArray();
            for (int i = 0; i < lp.ids().length; i++) top.add(tokenJson(lp.ids()[i], lp.logprobs()[i]));
            content.add(tokenJson(lp.chosenId(), lp.chosenLogprob()).put("top_logprobs", top));
        }
        return new JsonObject().put("content", content);
    }

    private JsonObject tokenJson(int id, float logprob) {
        String text = serving.engine().tokenizer().token(id) == null ? "" : serving.engine().tokenizer().decode(new int[] {id});
        JsonArray bytes = new JsonArray();
        for (byte x : text.getBytes(StandardCharsets.UTF_8)) bytes.add(x & 0xff);
        return new JsonObject().put("token", text).put("logprob", logprob).put("bytes", bytes);
    }

    private static JsonArray ids(int[] ids) {
        JsonArray a = new JsonArray();
        for (int id : ids) a.add(id);
        return a;
    }
}
