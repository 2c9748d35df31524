package io.sparseserve.loadtest;

import java.util.Arrays;

/** Latency samples in nanoseconds, kept whole (a bounded run holds at most a few million) for exact percentiles. */
final class Samples {
    private long[] values = new long[1024];
    private int count;

    void add(long nanos) {
        if (count == values.length) values = Arrays.copyOf(values, 2 * values.length);
        values[count++] = nanos;
    }

    int count() {
        return count;
    }

    /** The p-th percentile (nearest rank) in seconds, or NaN without samples. */
    double percentileSeconds(double p) {
        if (count == 0) return Double.NaN;
        long[] sorted = Arrays.copyOf(values, count);
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(p / 100.0 * count);
        return sorted[Math.clamp(rank - 1, 0, count - 1)] / 1e9;
    }

    double meanSeconds() {
        if (count == 0) return Double.NaN;
        double sum = 0;
        for (int i = 0; i < count; i++) sum += values[i];
        return sum / count / 1e9;
    }
}
