package io.sparseserve.server;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import io.sparseserve.TestData;
import io.sparseserve.api.v1.GenerateRequest;
import io.sparseserve.api.v1.GenerateResponse;
import io.sparseserve.api.v1.TextGenerationGrpc;
import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.backend.FaultInjection;
import io.sparseserve.backend.ModelRunners;
import io.sparseserve.engine.Engine;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Issue 8: a sticky device error (CUDA_ERROR_ILLEGAL_ADDRESS: the context is lost) turns the real server NOT_SERVING
 * (gRPC health Check and Watch, /readyz, /healthz), refuses every call, and takes the exit path once; a non-sticky one
 * (CUDA_ERROR_INVALID_VALUE) fails only the request whose step it hit, and the server goes on serving. The failure is
 * injected into a real CPU runner's step ({@link FaultInjection}: the code goes through the CUDA error checker and the
 * runner's sticky-or-not translation); the exit is the callback serve would use to end the process.
 */
class DeviceFailureServerTest {
    private static final int ILLEGAL_ADDRESS = 700;
    private static final int INVALID_VALUE = 1;

    private static GenerateRequest request(int tokens) {
        return GenerateRequest.newBuilder().setPrompt("The kernel").setMaxNewTokens(tokens).setIgnoreEos(true).build();
    }

    private static ServerFixture server(int code, List<DeviceFailure> exits) {
        return new ServerFixture(TestData.bundledModel(), Engine.Config.defaults(),
                new FaultInjection(code, 3).wrap(ModelRunners.cpu()),
                new SparseServer.Options("127.0.0.1", 0, "kdoc", "cpu").onDeviceFailure(exits::add));
    }

    @Test
    void aStickyErrorTurnsTheServerNotServingAndTakesTheExitPathOnce() throws Exception {
        List<DeviceFailure> exits = new CopyOnWriteArrayList<>();
        try (ServerFixture f = server(ILLEGAL_ADDRESS, exits)) {
            var health = HealthGrpc.newBlockingStub(f.channel).withDeadlineAfter(10, TimeUnit.SECONDS);
            assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
            LinkedBlockingQueue<ServingStatus> watched = new LinkedBlockingQueue<>();
            HealthGrpc.newStub(f.channel).watch(HealthCheckRequest.getDefaultInstance(), new StreamObserver<>() {
                @Override
                public void onNext(HealthCheckResponse r) {
                    watched.add(r.getStatus());
                }

                @Override
                public void onError(Throwable t) {}

                @Override
                public void onCompleted() {}
            });
            assertEquals(ServingStatus.SERVING, watched.poll(30, TimeUnit.SECONDS));

            // Step 1 is the prompt, step 2 the first decode, step 3 fails: the request in flight is failed, retryable.
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> f.blocking().generate(request(20)));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
            assertTrue(e.getStatus().getDescription().contains("the device failed")
                    && e.getStatus().getDescription().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), e.getStatus().getDescription());

            ServerFixture.await("the exit path", Duration.ofSeconds(30), () -> !exits.isEmpty());
            assertEquals(ServingStatus.NOT_SERVING, watched.poll(30, TimeUnit.SECONDS));
            assertEquals(ServingStatus.NOT_SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
            assertEquals(ServingStatus.NOT_SERVING, health.check(HealthCheckRequest.newBuilder()
                    .setService(TextGenerationGrpc.SERVICE_NAME).build()).getStatus());
            assertEquals(503, f.get("/readyz").statusCode());
            var live = f.get("/healthz");
            assertEquals(503, live.statusCode());
            assertTrue(live.body().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), live.body());
            assertTrue(f.server.draining());
            assertTrue(f.engine.deviceFailure() != null);

            // Nothing runs any more: new calls are refused at once, over gRPC and HTTP.
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () -> f.blocking().generate(request(2)));
            assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode());
            assertEquals(503, f.post("/v1/completions", "{\"prompt\": \"The\", \"max_tokens\": 2}").statusCode());

            assertEquals(1, exits.size(), "the exit path is taken once");
            assertTrue(exits.getFirst().getMessage().startsWith("--device cpu: cuLaunchKernel (injected by -Dsparseserve.faultInjection) "
                    + "failed: CUDA_ERROR_ILLEGAL_ADDRESS (700); the CUDA context is lost"), exits.getFirst().getMessage());
        } // closing after the failure does not hang or throw
    }

    @Test
    void aNonStickyErrorFailsOnlyItsRequest() throws Exception {
        List<DeviceFailure> exits = new CopyOnWriteArrayList<>();
        try (ServerFixture f = server(INVALID_VALUE, exits)) {
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> f.blocking().generate(request(20)));
            assertEquals(Status.Code.INTERNAL, e.getStatus().getCode(), e.toString());

            var health = HealthGrpc.newBlockingStub(f.channel).withDeadlineAfter(10, TimeUnit.SECONDS);
            assertEquals(ServingStatus.SERVING, health.check(HealthCheckRequest.getDefaultInstance()).getStatus());
            assertEquals(200, f.get("/readyz").statusCode());
            assertEquals(200, f.get("/healthz").statusCode());
            GenerateResponse ok = f.blocking().generate(request(5));
            assertEquals(5, ok.getTokenIdsCount());
            assertTrue(exits.isEmpty());
            assertNull(f.engine.deviceFailure());
        }
    }
}
