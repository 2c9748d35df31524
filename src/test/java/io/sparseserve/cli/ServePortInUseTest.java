package io.sparseserve.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.sparseserve.TestData;
import java.net.InetAddress;
import java.net.ServerSocket;
import org.junit.jupiter.api.Test;

/** serve on a port that is taken: one line naming the address, exit 2, no stack trace. */
class ServePortInUseTest {
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
}
