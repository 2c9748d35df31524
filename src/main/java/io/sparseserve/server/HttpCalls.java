package io.sparseserve.server;

import io.sparseserve.engine.Engine;
import io.sparseserve.engine.TokenSink;
import io.sparseserve.model.InvalidInputException;
import io.vertx.core.Vertx;
import io.vertx.core.http.HttpServerResponse;
import io.vertx.core.json.JsonObject;
import io.vertx.ext.web.RoutingContext;
import java.util.function.BiConsumer;
import java.util.function.Function;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What the OpenAI-style generation routes ({@code /v1/completions}, {@code /v1/chat/completions}) do alike: the
 * access-log entry and echoed request id, parsing and tokenizing on the bounded tokenizer pool, OpenAI-shaped errors
 * (an internal error reaches the client as its request id only, the details go to the log), watching a submitted
 * call for a client that leaves, and parking a stream whose reader stalls (cancelled after --stream-idle-timeout).
 */
final class HttpCalls {
    private static final Logger log = LoggerFactory.getLogger(HttpCalls.class);

    private final Serving serving;

    HttpCalls(Serving serving) {
        this.serving = serving;
    }

    /** Starts the call's access-log entry (the client's x-request-id, or a fresh one) and echoes its id. */
    AccessLog.Entry begin(RoutingContext rc, String route) {
        AccessLog.Entry entry = serving.accessLog().start(route, rc.request().getHeader(AccessLog.HEADER));
        entry.client(serving.clients().of(rc.request().remoteAddress(), rc.request().headers()));
        rc.response().putHeader(AccessLog.HEADER, entry.requestId());
        return entry;
    }

    /**
     * Parses the body into what the engine runs ({@code parse}, which may tokenize: on the tokenizer pool for a long
     * body, a full pool being 429), then hands it to {@code start} on the event loop; refusals are answered here.
     */
    <T> void accept(RoutingContext rc, AccessLog.Entry entry, Function<JsonObject, T> parse,
            BiConsumer<HttpServerResponse, T> start) {
        HttpServerResponse response = rc.response();
        if (serving.draining()) {
            error(response, entry, 503, "the server is shutting down", "unavailable");
            return;
        }
        int bodyBytes = rc.body().length();
        serving.tokenizers().run(Vertx.currentContext(), Math.max(bodyBytes, 0), () -> parse.apply(body(rc))).onComplete(ar -> {
            if (response.closed() || response.ended()) {
                entry.ended("499"); // the client left while its prompt was tokenized
                return;
            }
            if (ar.succeeded()) start.accept(response, ar.result());
            else refuse(response, entry, ar.cause(), "cannot start the request");
        });
    }

    private static JsonObject body(RoutingContext rc) {
        JsonObject body;
        try {
            body = rc.body().asJsonObject();
        } catch (RuntimeException e) { // malformed JSON
            throw new InvalidInputException("the body is not valid JSON: " + e.getMessage());
        }
        if (body == null) throw new InvalidInputException("the body must be a JSON object");
        return body;
    }

    /** Submits a parsed request; a refusal is answered, and the call is cancelled if the client leaves. */
    boolean submit(HttpServerResponse response, AccessLog.Entry entry, io.sparseserve.engine.GenerationRequest request,
            ContextSink sink, boolean stream) {
        entry.seed(request.sampling().seed());
        entry.promptTokens(request.promptIds().length);
        Engine.Handle handle;
        try {
            handle = serving.engine().submit(request, sink, entry.client());
        } catch (RuntimeException e) {
            sink.close();
            refuse(response, entry, e, "cannot start the request");
            return false;
        }
        sink.attach(handle);
        response.closeHandler(v -> {
            if (sink.closed()) return;
            sink.cancel();
            serving.metrics().requestCompleted("cancelled", "none");
            entry.ended("499");
        });
        if (stream) {
            response.setChunked(true).putHeader("content-type", "text/event-stream").putHeader("cache-control", "no-cache");
            response.drainHandler(v -> sink.readerBack());
        }
        return true;
    }

    /** After a stream's write: a full write queue parks the sequence; nothing read for the idle timeout ends the call. */
    void afterWrite(HttpServerResponse response, ContextSink sink, AccessLog.Entry entry) {
        if (!response.writeQueueFull()) return;
        sink.readerStalled(Vertx.currentContext().owner(), serving.limits().streamIdleTimeout(), () -> {
            // Nothing read for --stream-idle-timeout: cancel, and reset the stream (or close the connection).
            sink.cancel();
            response.reset();
            serving.metrics().requestCompleted("cancelled", "none");
            entry.ended("STREAM_IDLE_TIMEOUT");
        });
    }

    /** The engine's status for a request it refused or failed to start, as OpenAI's error shape. */
    void refuse(HttpServerResponse response, AccessLog.Entry entry, Throwable e, String what) {
        switch (e) {
            case InvalidInputException x -> error(response, entry, 400, x.getMessage(), "invalid_request_error");
            case Engine.QueueFullException x -> error(response, entry, 429, x.getMessage(), "rate_limit_exceeded");
            case TokenizerPool.FullException x -> error(response, entry, 429, x.getMessage(), "rate_limit_exceeded");
            case Engine.ClosedException x -> error(response, entry, 503, x.getMessage(), "unavailable");
            default -> internalError(response, entry, what, e);
        }
    }

    /** A unary call's sequence failed. */
    void failed(HttpServerResponse response, AccessLog.Entry entry, Throwable e, String what) {
        if (e instanceof Engine.ClosedException) error(response, entry, 503, e.getMessage(), "unavailable");
        else internalError(response, entry, what, e);
    }

    /** A stream's sequence failed after its headers went out: a last error event, then the end. */
    void streamFailed(HttpServerResponse response, AccessLog.Entry entry, Throwable e, String what) {
        boolean closed = e instanceof Engine.ClosedException;
        if (!closed) log.error("{} (request id {})", what, entry.requestId(), e);
        event(response, errorBody(closed ? e.getMessage() : internalMessage(entry), "server_error"));
        response.end();
        serving.metrics().requestCompleted(closed ? "unavailable" : "internal", "none");
        entry.ended(closed ? "503" : "500");
    }

    /** The details (and the trace) go to the log under the request id; the client gets the id only. */
    void internalError(HttpServerResponse response, AccessLog.Entry entry, String what, Throwable e) {
        log.error("{} (request id {})", what, entry.requestId(), e);
        error(response, entry, 500, internalMessage(entry), "server_error");
    }

    private static String internalMessage(AccessLog.Entry entry) {
        return "internal error (request id " + entry.requestId() + ")";
    }

    void error(HttpServerResponse response, AccessLog.Entry entry, int status, String message, String type) {
        serving.metrics().requestCompleted(switch (status) {
            case 400 -> "invalid_argument";
            case 429 -> "resource_exhausted";
            case 503 -> "unavailable";
            default -> "internal";
        }, "none");
        json(response, status, errorBody(message, type));
        entry.ended(Integer.toString(status));
    }

    static JsonObject errorBody(String message, String type) {
        return new JsonObject().put("error", new JsonObject().put("message", message).put("type", type).put("param", null)
                .put("code", null));
    }

    static void json(HttpServerResponse response, int status, JsonObject body) {
        response.setStatusCode(status).putHeader("content-type", "application/json").end(body.encode());
    }

    static void event(HttpServerResponse response, JsonObject data) {
        response.write("data: " + data.encode() + "\n\n");
    }

    static String finishReason(TokenSink.Finished f) {
        return switch (f.reason()) {
            case LENGTH -> "length";
            case EOS_TOKEN, STOP_SEQUENCE -> "stop";
        };
    }

    static JsonObject usage(TokenSink.Finished f) {
        return new JsonObject().put("prompt_tokens", f.promptTokens()).put("completion_tokens", f.completionTokens())
                .put("total_tokens", f.promptTokens() + f.completionTokens());
    }
}
