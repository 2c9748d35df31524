package io.sparseserve;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Assumptions;

/**
 * Where tests find the shared read-only inputs ({@code fixtures/}, {@code data/}, {@code models/}): the folder named
 * by the system property {@code sparseserve.shared} (surefire sets it to {@code ${project.basedir}/../shared}), else
 * {@code ../shared} relative to the working directory.
 *
 * <p>A clean clone has no {@code ../shared}: a test that needs it is then skipped with a message naming the missing
 * path (JUnit's assumption), not failed, so {@code mvn verify} passes there; CI runs with the folder beside and keeps
 * running those tests.
 */
public final class TestPaths {
    private TestPaths() {}

    public static Path shared() {
        String property = System.getProperty("sparseserve.shared");
        Path dir = property != null && !property.isBlank() ? Path.of(property) : Path.of("..", "shared");
        dir = dir.toAbsolutePath().normalize();
        Assumptions.assumeTrue(Files.isDirectory(dir),
                "skipped: shared test data not found at " + dir + " (set -Dsparseserve.shared=/path/to/shared)");
        return dir;
    }

    /** A path below the shared folder, e.g. {@code shared("fixtures", "tiny-llama-f32", "tokenizer.json")}. */
    public static Path shared(String first, String... more) {
        Path file = shared().resolve(Path.of(first, more));
        Assumptions.assumeTrue(Files.exists(file), "skipped: " + file + " is not present");
        return file;
    }

    /** The tiny Llama fixture as copied into the repository's test resources. */
    public static Path tinyLlamaDir() {
        return TestData.fixture(TestData.TINY_LLAMA);
    }

    /** The whole kdoc test text (620 KB); its first 60,000 characters are always in {@link TestData#testText60k()}. */
    public static Path kdocTestText() {
        return shared("data", "kdoc", "test.txt");
    }
}
