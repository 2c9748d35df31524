package io.sparseserve.server;

import static io.sparseserve.api.v1.TextGenerationGrpcService.Generate;
import static io.sparseserve.api.v1.TextGenerationGrpcService.GenerateStream;
import static io.sparseserve.api.v1.TextGenerationGrpcService.GetModelInfo;
import static io.sparseserve.api.v1.TextGenerationGrpcService.Tokenize;

import io.sparseserve.api.v1.FinishReason;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.GenerateStreamResponse;
import io.sparseserve.api.v1.TextGenerationGrpcService;
import io.sparseserve.api.v1.Timings;
import io.sparseserve.api.v1.TokenizeRequest;
import io.sparseserve.api.v1.TokenizeResponse;
import io.sparseserve.api.v1.Usage;
import io.sparseserve.engine.Engine;
import io.sparseserve.engine.GenerationRequest;
import io.sparseserve.engine.TokenSink;
import io.sparseserve.model.InvalidInputException;
import io.vertx.core.Vertx;
import io.vertx.grpc.common.GrpcStatus;
import io.vertx.grpc.common.MessageSizeOverflowException;
import io.vertx.grpc.server.GrpcServerRequest;
import io.vertx.grpc.server.GrpcServerResponse;
import io.vertx.grpc.server.Service;
import java.util.ArrayList;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code sparseserve.v1.TextGeneration} service on the Vert.x gRPC server: tokenizes long prompts on the bounded
 * tokenizer pool (never on the event loop), validates, submits to the engine, and writes what the engine produces
 * back on the call's own context. A client that cancels, or whose deadline passes, has its sequence cancelled; a
 * slow reader pauses its sequence (back-pressure).
 */
final class TextGenerationEndpoint {
    private static final Logger log = LoggerFactory.getLogger(TextGenerationEndpoint.class);
    static final int MAX_TOKENIZE_BYTES = 1 << 20;

    private final Vertx vertx;
    private final Serving serving;

    TextGenerationEndpoint(Vertx vertx, Serving serving) {
        this.vertx = vertx;
        this.serving = serving;
    }

    /** The service with its descriptor (what reflection lists) and our handlers bound to the generated methods. */
    Service service() {
        return Service.service(TextGenerationGrpcService.SERVICE_NAME, TextGenerationGrpcService.SERVICE_DESCRIPTOR)
                .bind(Generate, this::generate)
                .bind(GenerateStream, this::generateStream)
                .bind(Tokenize, this::tokenize)
                .bind(GetModelInfo, call -> call.handler(msg -> {
                    AccessLog.Entry entry = begin(call, "GetModelInfo", "");
                    if (refuseWhileDraining(call.response(), entry)) return;
                    call.response().end(serving.modelInfo());
                    entry.ended("OK");
                }))
                .build();
    }

    private void generate(GrpcServerRequest<GenerateRequest, GenerateResponse> call) {
        refuseInvalidMessages(call);
        call.handler(received -> {
            AccessLog.Entry entry = begin(call, "Generate", received.getRequestId());
            GenerateRequest msg = withRequestId(received, entry);
            GrpcServerResponse<GenerateRequest, GenerateResponse> response = call.response();
            StringBuilder text = new StringBuilder();
            List<Integer> ids = new ArrayList<>();
            GenerateResponse.Builder out = GenerateResponse.newBuilder().setRequestId(msg.getRequestId());
            ContextSink sink = new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
                @Override
                public void delta(TokenSink.Delta d) {
                    append(d);
                }

                @Override
                public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                    append(last);
                    out.setText(text.toString()).addAllTokenIds(ids).setFinishReason(finishReason(f))
                            .setUsage(usage(f)).setTimings(timings(f)).setSeed(entry.seed());
                    response.end(out.build());
                    serving.metrics().requestCompleted("ok", f.reason().name());
                    entry.finished("OK", f);
                }

                @Override
                public void error(Throwable e) {
                    fail(response, entry, e);
                }

                private void append(TokenSink.Delta d) {
                    text.append(d.text());
                    for (int id : d.tokenIds()) ids.add(id);
                    out.addAllLogprobs(serving.requests().logprobs(d.logprobs()));
                }
            });
            start(call, msg, sink, entry);
        });
    }

    private void generateStream(GrpcServerRequest<GenerateRequest, GenerateStreamResponse> call) {
        refuseInvalidMessages(call);
        call.handler(received -> {
            AccessLog.Entry entry = begin(call, "GenerateStream", received.getRequestId());
            GenerateRequest msg = withRequestId(received, entry);
            GrpcServerResponse<GenerateRequest, GenerateStreamResponse> response = call.response();
            String requestId = msg.getRequestId();
            ContextSink[] self = new ContextSink[1];
            ContextSink sink = new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
                @Override
                public void delta(TokenSink.Delta d) {
                    response.write(message(requestId, d).build());
                    if (response.writeQueueFull()) {
                        self[0].readerStalled(vertx, serving.limits().streamIdleTimeout(), () -> streamIdle(self[0], response, entry));
                    }
                }

                @Override
                public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                    response.end(message(requestId, last).setFinishReason(finishReason(f)).setUsage(usage(f))
                            .setTimings(timings(f)).setSeed(entry.seed()).build());
                    serving.metrics().requestCompleted("ok", f.reason().name());
                    entry.finished("OK", f);
                }

                @Override
                public void error(Throwable e) {
                    fail(response, entry, e);
                }
            });
            self[0] = sink;
            response.drainHandler(v -> sink.readerBack());
            start(call, msg, sink, entry);
        });
    }

    private GenerateStreamResponse.Builder message(String requestId, TokenSink.Delta d) {
        GenerateStreamResponse.Builder b = GenerateStreamResponse.newBuilder().setRequestId(requestId).setText(d.text());
        for (int id : d.tokenIds()) b.addTokenIds(id);
        return b.addAllLogprobs(serving.requests().logprobs(d.logprobs()));
    }

    /** The access-log entry of a call, with its request id echoed as response metadata before anything is sent. */
    private AccessLog.Entry begin(GrpcServerRequest<?, ?> call, String method, String fieldId) {
        String clientId = fieldId.isEmpty() ? call.headers().get(AccessLog.HEADER) : fieldId;
        AccessLog.Entry entry = serving.accessLog().start(method, clientId);
        entry.client(serving.clients().of(call.connection().remoteAddress(), call.headers()));
        call.response().headers().set(AccessLog.HEADER, entry.requestId());
        return entry;
    }

    /** The request with its id filled in when the client sent none (the engine and the responses carry it). */
    private static GenerateRequest withRequestId(GenerateRequest msg, AccessLog.Entry entry) {
        return msg.getRequestId().isEmpty() ? msg.toBuilder().setRequestId(entry.requestId()).build() : msg;
    }

    /**
     * Ties the call to its cancellation and deadline, tokenizes (on the tokenizer pool when the prompt is long),
     * validates and submits.
     */
    private <R> void start(GrpcServerRequest<GenerateRequest, R> call, GenerateRequest msg, ContextSink sink,
            AccessLog.Entry entry) {
        GrpcServerResponse<GenerateRequest, R> response = call.response();
        if (refuseWhileDraining(response, entry)) return;
        // A client that cancels resets its stream: the request and the response both report it. Set before the
        // prompt is tokenized, so that a call cancelled meanwhile is never submitted.
        call.exceptionHandler(t -> clientGone(sink, entry));
        call.errorHandler(err -> clientGone(sink, entry));
        response.exceptionHandler(t -> clientGone(sink, entry));
        long timeoutMs = call.timeout();
        if (timeoutMs > 0) {
            long timer = vertx.setTimer(timeoutMs, id -> {
                if (sink.closed()) return;
                sink.cancel();
                end(response, entry, GrpcStatus.DEADLINE_EXCEEDED, "deadline of " + timeoutMs + " ms passed");
            });
            sink.onClose(() -> vertx.cancelTimer(timer));
        }
        serving.tokenizers().run(Vertx.currentContext(), ProtoRequests.textBytes(msg), () -> serving.requests().toEngine(msg))
                .onComplete(ar -> {
                    if (sink.closed()) return; // cancelled or timed out while tokenizing
                    if (ar.succeeded()) submit(response, ar.result(), sink, entry);
                    else refuse(response, sink, entry, ar.cause());
                });
    }

    private void submit(GrpcServerResponse<?, ?> response, GenerationRequest request, ContextSink sink, AccessLog.Entry entry) {
        entry.seed(request.sampling().seed());
        entry.promptTokens(request.promptIds().length);
        try {
            sink.attach(serving.engine().submit(request, sink, entry.client()));
        } catch (RuntimeException e) {
            refuse(response, sink, entry, e);
        }
    }

    private void refuse(GrpcServerResponse<?, ?> response, ContextSink sink, AccessLog.Entry entry, Throwable e) {
        sink.close();
        switch (e) {
            case InvalidInputException x -> end(response, entry, GrpcStatus.INVALID_ARGUMENT, x.getMessage());
            case Engine.QueueFullException x -> end(response, entry, GrpcStatus.RESOURCE_EXHAUSTED, x.getMessage());
            case TokenizerPool.FullException x -> end(response, entry, GrpcStatus.RESOURCE_EXHAUSTED, x.getMessage());
            case Engine.ClosedException x -> end(response, entry, GrpcStatus.UNAVAILABLE, x.getMessage());
            default -> internalError(response, entry, "cannot start generation", e);
        }
    }

    /**
     * A message over the size limit, or one that does not decode, is the client's error: INVALID_ARGUMENT with the
     * size and the limit (the transport alone would answer RESOURCE_EXHAUSTED without a message).
     */
    private void refuseInvalidMessages(GrpcServerRequest<?, ?> call) {
        call.invalidMessageHandler(e -> {
            String message = e instanceof MessageSizeOverflowException o
                    ? "message is " + o.messageSize() + " bytes; at most " + SparseServer.MAX_MESSAGE_BYTES + " bytes allowed"
                    : "message does not decode as " + call.fullMethodName() + "'s request: " + e.getCause();
            end(call.response(), serving.accessLog().start(call.methodName(), call.headers().get(AccessLog.HEADER)),
                    GrpcStatus.INVALID_ARGUMENT, message);
        });
    }

    /**
     * The client read nothing for --stream-idle-timeout: the sequence is cancelled and the stream reset (a reset is
     * not flow-controlled, so it reaches a client whose window is full; trailers would queue behind the data).
     */
    private void streamIdle(ContextSink sink, GrpcServerResponse<?, ?> response, AccessLog.Entry entry) {
        sink.cancel();
        response.cancel();
        serving.metrics().requestCompleted("cancelled", "none");
        entry.ended("STREAM_IDLE_TIMEOUT");
    }

    private void clientGone(ContextSink sink, AccessLog.Entry entry) {
        if (sink.closed()) return;
        sink.cancel();
        serving.metrics().requestCompleted("cancelled", "none");
        entry.ended("CANCELLED");
    }

    private void tokenize(GrpcServerRequest<TokenizeRequest, TokenizeResponse> call) {
        refuseInvalidMessages(call);
        call.handler(msg -> {
            AccessLog.Entry entry = begin(call, "Tokenize", "");
            GrpcServerResponse<TokenizeRequest, TokenizeResponse> response = call.response();
            if (refuseWhileDraining(response, entry)) return;
            int bytes = msg.getTextBytes().size();
            if (bytes > MAX_TOKENIZE_BYTES) {
                end(response, entry, GrpcStatus.INVALID_ARGUMENT, "text is " + bytes + " bytes; at most " + MAX_TOKENIZE_BYTES
                        + " allowed");
                return;
            }
            // Tokenizing a long text takes milliseconds: off the event loop, on the bounded tokenizer pool.
            serving.tokenizers().run(Vertx.currentContext(), bytes, () -> {
                int[] ids = serving.engine().tokenizer().encodePrompt(msg.getText());
                TokenizeResponse.Builder b = TokenizeResponse.newBuilder();
                for (int id : ids) b.addTokenIds(id).addTokens(serving.requests().token(id));
                return b.build();
            }).onComplete(ar -> {
                if (ar.succeeded()) {
                    response.end(ar.result());
                    entry.promptTokens(ar.result().getTokenIdsCount());
                    entry.ended("OK");
                } else if (ar.cause() instanceof TokenizerPool.FullException full) {
                    end(response, entry, GrpcStatus.RESOURCE_EXHAUSTED, full.getMessage());
                } else {
                    internalError(response, entry, "tokenize failed", ar.cause());
                }
            });
        });
    }

    private boolean refuseWhileDraining(GrpcServerResponse<?, ?> response, AccessLog.Entry entry) {
        if (!serving.draining()) return false;
        end(response, entry, GrpcStatus.UNAVAILABLE, "the server is shutting down");
        return true;
    }

    private void end(GrpcServerResponse<?, ?> response, AccessLog.Entry entry, GrpcStatus status, String message) {
        serving.metrics().requestCompleted(status.name(), "none");
        response.status(status).statusMessage(message).end();
        entry.ended(status.name());
    }

    private void fail(GrpcServerResponse<?, ?> response, AccessLog.Entry entry, Throwable e) {
        if (e instanceof Engine.ClosedException) {
            end(response, entry, GrpcStatus.UNAVAILABLE, e.getMessage());
        } else {
            internalError(response, entry, "generation failed", e);
        }
    }

    /** The details (and the trace) go to the log under the request id; the client gets the id only. */
    private void internalError(GrpcServerResponse<?, ?> response, AccessLog.Entry entry, String what, Throwable e) {
        log.error("{} (request id {})", what, entry.requestId(), e);
        end(response, entry, GrpcStatus.INTERNAL, "internal error (request id " + entry.requestId() + ")");
    }

    static FinishReason finishReason(TokenSink.Finished f) {
        return switch (f.reason()) {
            case LENGTH -> FinishReason.LENGTH;
            case EOS_TOKEN -> FinishReason.EOS_TOKEN;
            case STOP_SEQUENCE -> FinishReason.STOP_SEQUENCE;
        };
    }

    static Usage usage(TokenSink.Finished f) {
        return Usage.newBuilder().setPromptTokens(f.promptTokens()).setCompletionTokens(f.completionTokens()).build();
    }

    static Timings timings(TokenSink.Finished f) {
        return Timings.newBuilder().setQueueSeconds(f.queueSeconds()).setTimeToFirstTokenSeconds(f.timeToFirstTokenSeconds())
                .setTotalSeconds(f.totalSeconds()).build();
    }
}
