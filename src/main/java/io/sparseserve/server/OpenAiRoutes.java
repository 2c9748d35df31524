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

import io.sparseserve.engine.GenerationRequest;
import io.sparseserve.engine.SamplingParams;
import io.sparseserve.engine.TokenSink;
import io.sparseserve.engine.TopLogprobs;
import io.sparseserve.model.InvalidInputException;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonArray;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.Router;
import io.vertx.ext.web.RoutingContext;
import io.vertx.ext.web.handler.BodyHandler;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

/**
 * OpenAI-compatible {@code POST /v1/completions} (with {@code stream: true} as server-sent events, ending in
 * {@code data: [DONE]}) and {@code GET /v1/models}, with vLLM's extra sampling fields (top_k, min_p,
 * repetition_penalty, min_tokens, ignore_eos, stop_token_ids). Defaults are OpenAI's (temperature 1, max_tokens 16).
 * Errors are OpenAI-shaped: {@code {"error": {"message", "type", "param", "code"}}}.
 */
final class OpenAiRoutes {
    private static final int MAX_BODY_BYTES = 4 << 20;

    private final Serving serving;
    private final HttpCalls calls;
    private final long created = System.currentTimeMillis() / 1000;
    private final AtomicLong ids = new AtomicLong();

    OpenAiRoutes(Serving serving) {
        this.serving = serving;
        this.calls = new HttpCalls(serving);
    }

    void mount(Router router) {
        router.get("/v1/models").handler(this::models);
        router.post("/v1/completions").handler(BodyHandler.create(false).setBodyLimit(MAX_BODY_BYTES));
        router.post("/v1/completions").handler(this::completions);
    }

    private void models(RoutingContext rc) {
        AccessLog.Entry entry = calls.begin(rc, "GET /v1/models");
        entry.ended("200");
        JsonObject model = new JsonObject().put("id", serving.modelId()).put("object", "model").put("created", created)
                .put("owned_by", "sparse-serve").put("max_model_len", serving.modelInfo().getContextLength());
        json(rc.response(), 200, new JsonObject().put("object", "list").put("data", new JsonArray().add(model)));
    }

    private void completions(RoutingContext rc) {
        AccessLog.Entry entry = calls.begin(rc, "POST /v1/completions");
        calls.accept(rc, entry, body -> parse(body, entry), (response, parsed) -> start(response, parsed, entry));
    }

    /** A request as parsed from the body: what the engine runs, and whether to stream it. */
    private record Parsed(GenerationRequest request, boolean stream) {}

    private Parsed parse(JsonObject body, AccessLog.Entry entry) {
        try {
            boolean stream = bool(body, "stream", false);
            return new Parsed(toEngine(body, entry.requestId()), stream);
        } catch (InvalidInputException e) {
            throw e;
        } catch (RuntimeException e) { // a field of an unexpected JSON type that a check above missed
            throw new InvalidInputException("the body is not a valid completion request: " + e.getMessage());
        }
    }

    private void start(HttpServerResponse response, Parsed parsed, AccessLog.Entry entry) {
        GenerationRequest request = parsed.request();
        String id = "cmpl-" + ids.incrementAndGet();
        boolean withLogprobs = request.logprobs() >= 0;
        ContextSink sink = parsed.stream() ? streamingSink(id, response, withLogprobs, entry) : unarySink(id, response, withLogprobs, entry);
        calls.submit(response, entry, request, sink, parsed.stream());
    }

    private ContextSink unarySink(String id, HttpServerResponse response, boolean withLogprobs, AccessLog.Entry entry) {
        StringBuilder text = new StringBuilder();
        List<TopLogprobs> logprobs = new ArrayList<>();
        return new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
            @Override
            public void delta(TokenSink.Delta d) {
                text.append(d.text());
                logprobs.addAll(d.logprobs());
            }

            @Override
            public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                delta(last);
                JsonObject choice = choice(text.toString(), withLogprobs ? logprobs : null, finishReason(f));
                json(response, 200, chunk(id, choice).put("usage", usage(f)).put("seed", entry.seed()));
                serving.metrics().requestCompleted("ok", f.reason().name());
                entry.finished("200", f);
            }

            @Override
            public void error(Throwable e) {
                calls.failed(response, entry, e, "completion failed");
            }
        });
    }

    private ContextSink streamingSink(String id, HttpServerResponse response, boolean withLogprobs, AccessLog.Entry entry) {
        ContextSink[] self = new ContextSink[1];
        self[0] = new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
            @Override
            public void delta(TokenSink.Delta d) {
                if (d.text().isEmpty() && !withLogprobs) return; // nothing to show yet (OpenAI sends text chunks)
                event(response, chunk(id, choice(d.text(), withLogprobs ? d.logprobs() : null, null)));
                calls.afterWrite(response, self[0], entry);
            }

            @Override
            public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                event(response, chunk(id, choice(last.text(), withLogprobs ? last.logprobs() : null, finishReason(f)))
                        .put("usage", usage(f)).put("seed", entry.seed()));
                response.end("data: [DONE]\n\n");
                serving.metrics().requestCompleted("ok", f.reason().name());
                entry.finished("200", f);
            }

            @Override
            public void error(Throwable e) {
                calls.streamFailed(response, entry, e, "completion failed");
            }
        });
        return self[0];
    }

    private JsonObject chunk(String id, JsonObject choice) {
        return new JsonObject().put("id", id).put("object", "text_completion").put("created", System.currentTimeMillis() / 1000)
                .put("model", serving.modelId()).put("choices", new JsonArray().add(choice));
    }

    private JsonObject choice(String text, List<TopLogprobs> logprobs, String finishReason) {
        return new JsonObject().put("index", 0).put("text", text)
                .put("logprobs", logprobs == null ? null : logprobsJson(logprobs)).put("finish_reason", finishReason);
    }

    /** OpenAI's legacy completions logprobs: tokens, token_logprobs, top_logprobs (token -> logprob). */
    private JsonObject logprobsJson(List<TopLogprobs> list) {
        JsonArray tokens = new JsonArray(), tokenLogprobs = new JsonArray(), top = new JsonArray();
        for (TopLogprobs lp : list) {
            tokens.add(serving.requests().token(lp.chosenId()));
            tokenLogprobs.add(lp.chosenLogprob());
            JsonObject alternatives = new JsonObject();
            for (int i = 0; i < lp.ids().length; i++) alternatives.put(serving.requests().token(lp.ids()[i]), lp.logprobs()[i]);
            top.add(alternatives);
        }
        return new JsonObject().put("tokens", tokens).put("token_logprobs", tokenLogprobs).put("top_logprobs", top);
    }

    private GenerationRequest toEngine(JsonObject b, String requestId) {
        String model = string(b, "model", null);
        if (model != null && !model.equals(serving.modelId())) {
            throw new InvalidInputException("model '" + model + "' is not served here (this server serves '" + serving.modelId() + "')");
        }
        if (integer(b, "n", 1) != 1) throw new InvalidInputException("n must be 1");
        if (bool(b, "echo", false)) throw new InvalidInputException("echo is not supported");
        Object prompt = b.getValue("prompt");
        int[] ids;
        if (prompt instanceof String s) {
            // A UTF-16 char takes at most 3 UTF-8 bytes: count the bytes only when the limit could be passed.
            int bytes = 3L * s.length() > serving.requests().maxPromptBytes()
                    ? s.getBytes(java.nio.charset.StandardCharsets.UTF_8).length : s.length();
            ids = serving.requests().promptIds(s, bytes, List.of(), "prompt");
        } else if (prompt instanceof JsonArray a && a.stream().allMatch(x -> x instanceof Number)) {
            List<Integer> list = new ArrayList<>();
            for (Object x : a) list.add(((Number) x).intValue());
            ids = list.isEmpty() ? new int[0] : serving.requests().promptIds("", 0, list, "prompt");
        } else {
            throw new InvalidInputException("prompt must be a string or an array of token ids");
        }
        int topK = integer(b, "top_k", 0);
        SamplingParams sampling = new SamplingParams(number(b, "temperature", 1f), topK == -1 ? 0 : topK,
                number(b, "top_p", 1f), number(b, "min_p", 0f), number(b, "repetition_penalty", 1f),
                number(b, "presence_penalty", 0f), number(b, "frequency_penalty", 0f), b.getValue("seed") == null
                        ? io.sparseserve.engine.Seeds.fresh() : longValue(b, "seed", 0L));
        List<String> stop = stopStrings(b);
        int[] stopTokenIds = stopTokenIds(b);
        Integer logprobs = b.getValue("logprobs") == null ? null : integer(b, "logprobs", 0);
        if (logprobs != null && logprobs < 0) {
            throw new InvalidInputException("logprobs must be in [0, " + GenerationRequest.MAX_LOGPROBS + "], got " + logprobs);
        }
        string(b, "user", ""); // accepted (OpenAI's end-user label), type-checked, not used
        return new GenerationRequest(requestId, ids, sampling, integer(b, "max_tokens", ProtoRequests.DEFAULT_MAX_NEW_TOKENS),
                integer(b, "min_tokens", 0), stop, stopTokenIds, bool(b, "ignore_eos", false), logprobs == null ? -1 : logprobs);
    }
}
