package io.sparseserve.engine;

import java.util.concurrent.ThreadLocalRandom;

/**
 * The seed of a request that gives none: a fresh random one, so that two identical sampled requests give different
 * texts (as llama.cpp's {@code -1} and vLLM's unset seed do). The seed used is reported back so the text can be
 * repeated. Drawn below 2^53 so it survives JSON clients that read numbers as doubles.
 */
public final class Seeds {
    private Seeds() {}

    public static long fresh() {
        return ThreadLocalRandom.current().nextLong(1L << 53);
    }
}
