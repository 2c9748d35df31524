package io.sparseserve;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.opentest4j.TestAbortedException;

/** A clone without ../shared must skip the tests that need it (with a message), never fail them. */
class TestPathsTest {
    @Test
    void missingSharedFolderSkipsWithAMessage(@TempDir Path tmp) {
        String before = System.getProperty("sparseserve.shared");
        System.setProperty("sparseserve.shared", tmp.resolve("no-such-shared").toString());
        try {
            TestAbortedException e = assertThrows(TestAbortedException.class, TestPaths::kdocTestText);
            assertTrue(e.getMessage().contains("no-such-shared"), e.getMessage());
        } finally {
            if (before == null) System.clearProperty("sparseserve.shared");
            else System.setProperty("sparseserve.shared", before);
        }
    }

    @Test
    void missingFileInsideSharedSkips(@TempDir Path tmp) {
        String before = System.getProperty("sparseserve.shared");
        System.setProperty("sparseserve.shared", tmp.toString());
        try {
            assertThrows(TestAbortedException.class, () -> TestPaths.shared("data", "kdoc", "test.txt"));
        } finally {
            if (before == null) System.clearProperty("sparseserve.shared");
            else System.setProperty("sparseserve.shared", before);
        }
    }
}
