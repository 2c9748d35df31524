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
import io.vertx.core.Context;
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
 * The {@code sparseserve.v1.TextGeneration} service on the Vert.x gRPC server: validates and tokenizes on the event
 * loop, submits to the engine, and writes what the engine produces back on the call's own context. A client that
 * cancels, or whose deadline passes, has its sequence cancelled; a slow reader pauses its sequence (back-pressure).
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
                    if (refuseWhileDraining(call.response())) return;
                    call.response().end(serving.modelInfo());
                }))
                .build();
    }

    private void generate(GrpcServerRequest<GenerateRequest, GenerateResponse> call) {
        refuseInvalidMessages(call);
        call.handler(msg -> {
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
                            .setUsage(usage(f)).setTimings(timings(f));
                    response.end(out.build());
                    serving.metrics().requestCompleted("ok", f.reason().name());
                }

                @Override
                public void error(Throwable e) {
                    fail(response, e);
                }

                private void append(TokenSink.Delta d) {
                    text.append(d.text());
                    for (int id : d.tokenIds()) ids.add(id);
                    out.addAllLogprobs(serving.requests().logprobs(d.logprobs()));
                }
            });
            start(call, msg, sink);
        });
    }

    private void generateStream(GrpcServerRequest<GenerateRequest, GenerateStreamResponse> call) {
        refuseInvalidMessages(call);
        call.handler(msg -> {
            GrpcServerResponse<GenerateRequest, GenerateStreamResponse> response = call.response();
            String requestId = msg.getRequestId();
            ContextSink[] self = new ContextSink[1];
            ContextSink sink = new ContextSink(Vertx.currentContext(), new ContextSink.Target() {
                @Override
                public void delta(TokenSink.Delta d) {
                    response.write(message(requestId, d).build());
                    if (response.writeQueueFull()) self[0].handle().pause();
                }

                @Override
                public void finish(TokenSink.Delta last, TokenSink.Finished f) {
                    response.end(message(requestId, last).setFinishReason(finishReason(f)).setUsage(usage(f))
                            .setTimings(timings(f)).build());
                    serving.metrics().requestCompleted("ok", f.reason().name());
                }

                @Override
                public void error(Throwable e) {
                    fail(response, e);
                }
            });
            self[0] = sink;
            response.drainHandler(v -> {
                if (sink.handle() != null) sink.handle().resume();
            });
            start(call, msg, sink);
        });
    }

    private GenerateStreamResponse.Builder message(String requestId, TokenSink.Delta d) {
        GenerateStreamResponse.Builder b = GenerateStreamResponse.newBuilder().setRequestId(requestId).setText(d.text());
        for (int id : d.tokenIds()) b.addTokenIds(id);
        return b.addAllLogprobs(serving.requests().logprobs(d.logprobs()));
    }

    /** Validates, submits, and ties the sequence to the call's cancellation and deadline. */
    private <R> void start(GrpcServerRequest<GenerateRequest, R> call, GenerateRequest msg, ContextSink sink) {
        GrpcServerResponse<GenerateRequest, R> response = call.response();
        if (refuseWhileDraining(response)) return;
        Engine.Handle handle;
        try {
            GenerationRequest request = serving.requests().toEngine(msg);
            handle = serving.engine().submit(request, sink);
        } catch (InvalidInputException e) {
            sink.close();
            end(response, GrpcStatus.INVALID_ARGUMENT, e.getMessage());
            return;
        } catch (Engine.QueueFullException e) {
            sink.close();
            end(response, GrpcStatus.RESOURCE_EXHAUSTED, e.getMessage());
            return;
        } catch (Engine.ClosedException e) {
            sink.close();
            end(response, GrpcStatus.UNAVAILABLE, e.getMessage());
            return;
        } catch (RuntimeException e) {
            sink.close();
            log.error("cannot start generation", e);
            end(response, GrpcStatus.INTERNAL, "internal error: " + e);
            return;
        }
        sink.attach(handle);
        // A client that cancels resets its stream: the request and the response both report it.
        call.exceptionHandler(t -> clientGone(sink));
        call.errorHandler(err -> clientGone(sink));
        response.exceptionHandler(t -> clientGone(sink));
        long timeoutMs = call.timeout();
        if (timeoutMs > 0) {
            long timer = vertx.setTimer(timeoutMs, id -> {
                if (sink.closed()) return;
                sink.cancel();
                end(response, GrpcStatus.DEADLINE_EXCEEDED, "deadline of " + timeoutMs + " ms passed");
            });
            sink.onClose(() -> vertx.cancelTimer(timer));
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
            end(call.response(), GrpcStatus.INVALID_ARGUMENT, message);
        });
    }

    private void clientGone(ContextSink sink) {
        if (sink.closed()) return;
        sink.cancel();
        serving.metrics().requestCompleted("cancelled", "none");
    }

    private void tokenize(GrpcServerRequest<TokenizeRequest, TokenizeResponse> call) {
        refuseInvalidMessages(call);
        call.handler(msg -> {
            GrpcServerResponse<TokenizeRequest, TokenizeResponse> response = call.response();
            if (refuseWhileDraining(response)) return;
            int bytes = msg.getTextBytes().size();
            if (bytes > MAX_TOKENIZE_BYTES) {
                response.status(GrpcStatus.INVALID_ARGUMENT)
                        .statusMessage("text is " + bytes + " bytes; at most " + MAX_TOKENIZE_BYTES + " allowed").end();
                return;
            }
            // Tokenizing a long text takes milliseconds: off the event loop.
            Context context = Vertx.currentContext();
            context.<TokenizeResponse>executeBlocking(() -> {
                int[] ids = serving.engine().tokenizer().encodePrompt(msg.getText());
                TokenizeResponse.Builder b = TokenizeResponse.newBuilder();
                for (int id : ids) b.addTokenIds(id).addTokens(serving.requests().token(id));
                return b.build();
            }, false).onComplete(ar -> {
                if (ar.succeeded()) response.end(ar.result());
                else response.status(GrpcStatus.INTERNAL).statusMessage(String.valueOf(ar.cause())).end();
            });
        });
    }

    private boolean refuseWhileDraining(GrpcServerResponse<?, ?> response) {
        if (!serving.draining()) return false;
        end(response, GrpcStatus.UNAVAILABLE, "the server is shutting down");
        return true;
    }

    private void end(GrpcServerResponse<?, ?> response, GrpcStatus status, String message) {
        serving.metrics().requestCompleted(status.name(), "none");
        response.status(status).statusMessage(message).end();
    }

    private void fail(GrpcServerResponse<?, ?> response, Throwable e) {
        if (e instanceof Engine.ClosedException) {
            end(response, GrpcStatus.UNAVAILABLE, e.getMessage());
        } else {
            log.error("generation failed", e);
            end(response, GrpcStatus.INTERNAL, "internal error: " + e);
        }
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
