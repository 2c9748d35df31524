package io.sparseserve.cli;

import java.io.PrintStream;
import java.util.function.IntConsumer;

/** A one-line progress bar on stderr for long jobs (evaluation, pruning); silent when stderr is not a terminal. */
final class ProgressBar implements IntConsumer {
    private final String label;
    private final int total;
    private final PrintStream out = System.err;
    private final long start = System.nanoTime();
    private final boolean enabled;
    private long lastDraw;

    ProgressBar(String label, int total, boolean enabled) {
        this.label = label;
        this.total = total;
        this.enabled = enabled && System.console() != null;
    }

    @Override
    public void accept(int done) {
        if (!enabled) return;
        long now = System.nanoTime();
        if (done < total && now - lastDraw < 200_000_000L) return;
        lastDraw = now;
        int width = 30;
        int filled = total == 0 ? width : (int) ((long) done * width / total);
        double secs = (now - start) / 1e9;
        out.printf("\r%s [%s%s] %d/%d %.1fs", label, "#".repeat(filled), " ".repeat(width - filled), done, total, secs);
        if (done >= total) out.println();
        out.flush();
    }
}
