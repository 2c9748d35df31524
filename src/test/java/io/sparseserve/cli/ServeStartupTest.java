package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import java.net.InetAddress;
import java.net.ServerSocket;
import org.junit.jupiter.api.Test;

/** serve's start-up refusals: one line naming the problem, exit 2, no stack trace; the exposure warning. */
class ServeStartupTest {
    @Test
    void portInUseIsOneLineAndExitTwo() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            CliRunner r = CliRunner.run("serve", "--model", TestData.bundledModel().toString(), "--host", "127.0.0.1",
                    "--port", Integer.toString(taken.getLocalPort()));
            assertEquals(Main.EXIT_BAD_INPUT, r.exitCode(), r.err());
            assertTrue(r.err().contains("error: cannot listen on 127.0.0.1:" + taken.getLocalPort()), r.err());
            assertFalse(r.err().contains("\tat "), "stack trace printed:\n" + r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
        }
    }

    @Test
    void badSecurityOptionsAreOneLineAndExitTwo(@org.junit.jupiter.api.io.TempDir java.nio.file.Path tmp) throws Exception {
        java.nio.file.Path junk = java.nio.file.Files.writeString(tmp.resolve("junk.pem"), "not a pem file\n");
        String model = TestData.bundledModel().toString();
        String[][] cases = {
            {"serve", "--model", model, "--port", "0", "--tls-cert", tmp.resolve("missing.pem").toString(), "--tls-key", junk.toString()},
            {"serve", "--model", model, "--port", "0", "--tls-cert", junk.toString()},
            {"serve", "--model", model, "--port", "0", "--tls-cert", junk.toString(), "--tls-key", junk.toString()},
            {"serve", "--model", model, "--port", "0", "--api-key", " "},
            {"serve", "--model", model, "--port", "0", "--metrics-auth"},
            {"serve", "--model", model, "--port", "0", "--api-key-file", tmp.resolve("nokey").toString()},
        };
        for (String[] args : cases) {
            CliRunner r = CliRunner.run(args);
            assertEquals(Main.EXIT_BAD_INPUT, r.exitCode(), String.join(" ", args) + "\n" + r.err());
            assertTrue(r.err().startsWith("error: "), r.err());
            assertFalse(r.err().contains("\tat "), "stack trace printed:\n" + r.err());
        }
    }

    @Test
    void badSchedulingOptionsAreOneLineAndExitTwo() {
        String model = TestData.bundledModel().toString();
        for (String[] bad : new String[][] {{"--shared-prefill-ms", "-1", "--shared-prefill-ms must be in [0, 60000]"},
                {"--shared-prefill-ms", "NaN", "--shared-prefill-ms must be in [0, 60000]"},
                {"--max-running-per-client", "-1", "--max-running-per-client must be >= 0"}}) {
            CliRunner r = CliRunner.run("serve", "--model", model, "--port", "0", bad[0], bad[1]);
            assertEquals(Main.EXIT_BAD_INPUT, r.exitCode(), r.err());
            assertTrue(r.err().startsWith("error: " + bad[2]), r.err());
            assertEquals(1, r.err().strip().lines().count(), r.err());
        }
    }

    @Test
    void everyInterfaceWithoutAKeyWarns() {
        assertTrue(ServeCommand.exposureWarning("0.0.0.0", null).contains("without an API key"));
        assertEquals(null, ServeCommand.exposureWarning("127.0.0.1", null));
        assertEquals(null, ServeCommand.exposureWarning("0.0.0.0", new io.sparseserve.server.ApiKeyAuth("k")));
    }
}
