package io.sparseserve.server;

import io.sparseserve.api.v1.TextGenerationGrpcService;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import io.vertx.grpc.common.GrpcStatus;
import io.vertx.grpc.health.HealthService;
import io.vertx.grpc.health.handler.GrpcHealthCheckV1Handler;
import io.vertx.grpc.health.handler.GrpcHealthListV1Handler;
import io.vertx.grpc.health.handler.GrpcHealthWatchV1Handler;
import io.vertx.grpc.health.v1.HealthCheckRequest;
import io.vertx.grpc.health.v1.HealthCheckResponse;
import io.vertx.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.vertx.grpc.health.v1.HealthListResponse;
import io.vertx.grpc.server.GrpcServer;
import io.vertx.grpc.server.GrpcServerResponse;
import io.vertx.grpc.server.Service;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The standard {@code grpc.health.v1.Health} service (Check, Watch, List) with the server's drain state: the server as
 * a whole (service "") and TextGeneration are SERVING once the model is loaded and NOT_SERVING while draining; the
 * other services are SERVING. Vert.x's own health service always reports "" as SERVING, which would keep a load
 * balancer sending calls to a draining server, so only its descriptor and method definitions are used here.
 */
final class HealthEndpoint {
    private static final String OURS = TextGenerationGrpcService.SERVICE_NAME.fullyQualifiedName();

    private final Serving serving;
    private final GrpcServer grpc;
    private final Map<GrpcServerResponse<HealthCheckRequest, HealthCheckResponse>, Watch> watches = new ConcurrentHashMap<>();

    private record Watch(Context context, String service) {}

    HealthEndpoint(Vertx vertx, Serving serving, GrpcServer grpc) {
        this.serving = serving;
        this.grpc = grpc;
        this.descriptorSource = HealthService.create(vertx);
    }

    private final HealthService descriptorSource;

    Service service() {
        return Service.service(descriptorSource.name(), descriptorSource.descriptor())
                .bind(GrpcHealthCheckV1Handler.SERVICE_METHOD, call -> call.handler(msg -> {
                    ServingStatus status = status(msg.getService());
                    if (status == null) {
                        call.response().status(GrpcStatus.NOT_FOUND).statusMessage("unknown service " + msg.getService()).end();
                    } else {
                        call.response().end(response(status));
                    }
                }))
                .bind(GrpcHealthWatchV1Handler.SERVICE_METHOD, call -> call.handler(msg -> {
                    ServingStatus status = status(msg.getService());
                    GrpcServerResponse<HealthCheckRequest, HealthCheckResponse> response = call.response();
                    response.write(response(status == null ? ServingStatus.SERVICE_UNKNOWN : status));
                    watches.put(response, new Watch(Vertx.currentContext(), msg.getService()));
                    call.exceptionHandler(e -> watches.remove(response));
                    call.errorHandler(e -> watches.remove(response));
                }))
                .bind(GrpcHealthListV1Handler.SERVICE_METHOD, call -> call.handler(msg -> {
                    HealthListResponse.Builder b = HealthListResponse.newBuilder();
                    b.putStatuses("", response(status("")));
                    for (Service s : grpc.services()) {
                        String name = s.name().fullyQualifiedName();
                        b.putStatuses(name, response(status(name)));
                    }
                    call.response().end(b.build());
                }))
                .build();
    }

    /** Tells every Watch of the server or of TextGeneration that it is NOT_SERVING now. */
    void drainingStarted() {
        watches.forEach((response, watch) -> {
            if (watch.service().isBlank() || watch.service().equals(OURS)) {
                watch.context().runOnContext(v -> response.write(response(ServingStatus.NOT_SERVING)));
            }
        });
    }

    private ServingStatus status(String service) {
        boolean ours = service.isBlank() || service.equals(OURS);
        if (ours) return serving.draining() ? ServingStatus.NOT_SERVING : ServingStatus.SERVING;
        boolean known = grpc.services().stream().anyMatch(s -> s.name().fullyQualifiedName().equals(service));
        return known ? ServingStatus.SERVING : null;
    }

    private static HealthCheckResponse response(ServingStatus status) {
        return HealthCheckResponse.newBuilder().setStatus(status).build();
    }
}
