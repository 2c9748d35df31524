package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import io.sparseserve.backend.FaultInjection;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * Issue 8, the process end of a sticky device error: {@code serve} in its own JVM with a fault injected into its
 * runner's first step (-Dsparseserve.faultInjection=700@1, CUDA_ERROR_ILLEGAL_ADDRESS) answers the request in flight
 * 503, then ends by itself with exit code 1 and one line saying why, so that an orchestrator restarts it.
 */
class DeviceFailureExitTest {

    private static Process serve(String... jvmAndArgs) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"));
        cmd.addAll(List.of(jvmAndArgs));
        return new ProcessBuilder(cmd).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
    }

    @Test
    void aStickyErrorEndsServeWithExitCodeOne() throws Exception {
        Process p = serve("-Dsparseserve.faultInjection=700@1", "-cp", System.getProperty("java.class.path"),
                "io.sparseserve.cli.Main", "serve", "--model", TestData.bundledModel().toString(), "--port", "0");
        try {
            BufferedReader err = new BufferedReader(new InputStreamReader(p.getErrorStream(), StandardCharsets.UTF_8));
            CompletableFuture<Integer> port = new CompletableFuture<>();
            StringBuilder all = new StringBuilder();
            Thread reader = Thread.ofPlatform().daemon().start(() -> {
                Pattern listening = Pattern.compile("sparse-serve: listening on 127\\.0\\.0\\.1:(\\d+)");
                try {
                    for (String line; (line = err.readLine()) != null; ) {
                        synchronized (all) {
                            all.append(line).append('\n');
                        }
                        Matcher m = listening.matcher(line);
                        if (m.find()) port.complete(Integer.parseInt(m.group(1)));
                    }
                } catch (java.io.IOException e) {
                    port.completeExceptionally(e);
                }
                port.completeExceptionally(new IllegalStateException("serve ended before listening"));
            });
            int actual = port.get(120, TimeUnit.SECONDS);
            HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + actual + "/v1/completions"))
                    .timeout(Duration.ofSeconds(60)).header("content-type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"The kernel\", \"max_tokens\": 4}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(503, r.statusCode(), r.body());
            assertTrue(r.body().contains("the device failed"), r.body());

            assertTrue(p.waitFor(120, TimeUnit.SECONDS), "serve did not end after the device failure");
            reader.join(10_000);
            String stderr;
            synchronized (all) {
                stderr = all.toString();
            }
            assertEquals(1, p.exitValue(), stderr);
            assertTrue(stderr.contains("error: device failed, exiting so that the server is restarted: --device cpu: "
                    + "cuLaunchKernel (injected by -Dsparseserve.faultInjection) failed: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), stderr);
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void aBadFaultInjectionIsOneLineAndExitTwo() {
        CliRunner r = generateWithFault("illegal", 1);
        assertEquals(2, r.exitCode(), r.err());
        assertEquals("error: -Dsparseserve.faultInjection must be CODE@STEP (a CUresult code > 0, a step >= 1), got 'illegal'",
                r.err().strip());
    }

    @Test
    void aDeviceFailureInGenerateIsOneLineAndExitOne() {
        CliRunner r = generateWithFault("700@1", 2);
        assertEquals(1, r.exitCode(), r.err());
        assertTrue(r.err().strip().startsWith("error: device failed: "), r.err());
        assertTrue(r.err().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), r.err());
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
    }

    /** {@code generate} on the bundled model in this JVM with -Dsparseserve.faultInjection set to value meanwhile. */
    private static CliRunner generateWithFault(String value, int maxNewTokens) {
        String old = System.getProperty(FaultInjection.PROPERTY);
        System.setProperty(FaultInjection.PROPERTY, value);
        try {
            return CliRunner.run("generate", "--model", TestData.bundledModel().toString(), "--prompt", "x",
                    "--max-new-tokens", String.valueOf(maxNewTokens));
        } finally {
            if (old == null) System.clearProperty(FaultInjection.PROPERTY);
            else System.setProperty(FaultInjection.PROPERTY, old);
        }
    }
}
