package io.sparseserve;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where tests find the shared read-only inputs ({@code fixtures/}, {@code data/}, {@code models/}): the folder named
 * by the system property {@code sparseserve.shared} (surefire sets it to {@code ${project.basedir}/../shared}), else
 * {@code ../shared} relative to the working directory.
 */
public final class TestPaths {
    private TestPaths() {}

    public static Path shared() {
        String property = System.getProperty("sparseserve.shared");
        Path dir = property != null && !property.isBlank() ? Path.of(property) : Path.of("..", "shared");
        dir = dir.toAbsolutePath().normalize();
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("shared test data not found at " + dir
                    + " (set -Dsparseserve.shared=/path/to/shared)");
        }
        return dir;
    }

    /** A path below the shared folder, e.g. {@code shared("fixtures", "tiny-llama-f32", "tokenizer.json")}. */
    public static Path shared(String first, String... more) {
        return shared().resolve(Path.of(first, more));
    }

    /** The tiny Llama fixture as copied into the repository's test resources. */
    public static Path tinyLlamaDir() {
        return TestData.fixture(TestData.TINY_LLAMA);
    }

    public static Path kdocTestText() {
        return shared("data", "kdoc", "test.txt");
    }
}
