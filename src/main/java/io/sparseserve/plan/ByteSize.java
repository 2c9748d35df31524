package io.sparseserve.plan;

import io.sparseserve.model.InvalidInputException;
import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/** Sizes on the command line: {@code 80GiB}, {@code 80Gi} (binary), {@code 80GB}, {@code 80G} (decimal), or bytes. */
public final class ByteSize {
    private static final Pattern SIZE = Pattern.compile("(\\d+(?:\\.\\d+)?)\\s*([kmgt]?)(i?)(b?)", Pattern.CASE_INSENSITIVE);

    private ByteSize() {}

    public static long parse(String option, String text) {
        Matcher m = SIZE.matcher(text.trim());
        if (!m.matches() || (m.group(2).isEmpty() && !m.group(3).isEmpty())) {
            throw new InvalidInputException(option + " must be a size like 80GiB, 80GB or 85899345920, got '" + text + "'");
        }
        int power = "kmgt".indexOf(m.group(2).toLowerCase(Locale.ROOT)) + 1;
        double unit = Math.pow(m.group(3).isEmpty() ? 1000 : 1024, power);
        double bytes = Double.parseDouble(m.group(1)) * unit;
        if (bytes <= 0 || bytes > Long.MAX_VALUE) throw new InvalidInputException(option + " must be positive, got '" + text + "'");
        return Math.round(bytes);
    }

    /** GiB with two decimals. */
    public static String gib(long bytes) {
        return String.format(Locale.ROOT, "%.2f GiB", bytes / (double) (1L << 30));
    }
}
