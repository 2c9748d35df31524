package io.sparseserve.server;

import io.sparseserve.engine.TokenSink;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ThreadLocalRandom;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One line per request for operators, on the logger {@code sparseserve.access}: request id, method, status, prompt
 * and output tokens, time to first token, duration, finish reason, the sampling seed used and the client (its
 * address, see {@link ClientIdentity}). Never the prompt or
 * the generated text. The request id is the client's ({@code x-request-id} header or the request's own field) when
 * it is a plain token, else one generated here; the endpoints echo it back.
 */
final class AccessLog {
    private static final Logger log = LoggerFactory.getLogger("sparseserve.access");
    static final String HEADER = "x-request-id";
    private static final int MAX_ID = 128;

    private final List<Consumer<String>> listeners = new CopyOnWriteArrayList<>();

    /** Also hands every line to {@code listener} (tests, and a place for a future file sink). */
    void addListener(Consumer<String> listener) {
        listeners.add(listener);
    }

    /** Starts the record of one request; {@code clientId} may be null or unusable, then an id is generated. */
    Entry start(String method, String clientId) {
        return new Entry(method, usable(clientId) ? clientId : generateId(), System.nanoTime());
    }

    static String generateId() {
        ThreadLocalRandom r = ThreadLocalRandom.current();
        return String.format(Locale.ROOT, "req-%016x", r.nextLong());
    }

    /** Ids go into log lines and headers as they are: only short runs of [A-Za-z0-9._:-] are taken from clients. */
    static boolean usable(String id) {
        if (id == null || id.isEmpty() || id.length() > MAX_ID) return false;
        for (int i = 0; i < id.length(); i++) {
            char c = id.charAt(i);
            boolean ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.'
                    || c == '_' || c == ':' || c == '-';
            if (!ok) return false;
        }
        return true;
    }

    /** One request's record; confined to its call's context. Written once, by whichever ending comes first. */
    final class Entry {
        private final String method;
        private final String requestId;
        private final long startNanos;
        private long seed = Long.MIN_VALUE;
        private int promptTokens = -1;
        private String client = "unknown";
        private boolean written;

        private Entry(String method, String requestId, long startNanos) {
            this.method = method;
            this.requestId = requestId;
            this.startNanos = startNanos;
        }

        String requestId() {
            return requestId;
        }

        void seed(long seed) {
            this.seed = seed;
        }

        boolean hasSeed() {
            return seed != Long.MIN_VALUE;
        }

        long seed() {
            return seed;
        }

        /** Who sent the request ({@link ClientIdentity}): the engine shares its slots between clients. */
        void client(String client) {
            this.client = client;
        }

        String client() {
            return client;
        }

        void promptTokens(int n) {
            this.promptTokens = n;
        }

        /** A generation that finished: its counts and times come from the engine. */
        void finished(String status, TokenSink.Finished f) {
            write(status, f.promptTokens(), f.completionTokens(), f.timeToFirstTokenSeconds() * 1e3,
                    f.reason().name().toLowerCase(Locale.ROOT));
        }

        /** Any other ending: refused, failed, cancelled, or a call that generates nothing. */
        void ended(String status) {
            write(status, promptTokens, 0, -1, "none");
        }

        boolean written() {
            return written;
        }

        private void write(String status, int prompt, int output, double ttftMs, String finish) {
            if (written) return;
            written = true;
            double durationMs = (System.nanoTime() - startNanos) / 1e6;
            String line = String.format(Locale.ROOT,
                    "request_id=%s method=%s status=%s prompt_tokens=%d output_tokens=%d ttft_ms=%s duration_ms=%.1f"
                            + " finish=%s seed=%s client=%s",
                    requestId, method, status, Math.max(prompt, 0), output,
                    ttftMs < 0 ? "-" : String.format(Locale.ROOT, "%.1f", ttftMs), durationMs, finish,
                    hasSeed() ? Long.toString(seed) : "-", client);
            log.info(line);
            for (Consumer<String> l : listeners) l.accept(line);
        }
    }
}
