package io.sparseserve.engine;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;

/** Lets tests in other packages run the reference-logits checks on a model folder of their own. */
public final class ReferenceLogitsTestAccess {
    private ReferenceLogitsTestAccess() {}

    public static void checkTop5(Path dir, JsonNode ref) {
        ReferenceLogitsTest.checkTop5(dir, ref);
    }

    public static void checkGreedy(Path dir, JsonNode ref) {
        ReferenceLogitsTest.checkGreedy(dir, ref);
    }
}
