package io.sparseserve.loadtest;

import io.sparseserve.api.v1.GenerateRequest;
import java.io.BufferedOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The attackers of the adversarial suite, each bounded by a count and a deadline, each on raw loopback sockets (or
 * the JDK's HTTP client) so that it can misbehave as a client library never would. Every attack returns what it did
 * and what the server answered, as outcome counts.
 */
final class Attacks {
    static final String STREAM_PATH = "/sparseserve.v1.TextGeneration/GenerateStream";

    /** @param from the address the attackers' connections come from (null: the system's choice) */
    record Target(String host, int port, String apiKey, long seed, String from) {
        String authority() {
            return host + ":" + port;
        }
    }

    private final Target t;
    private final Map<String, AtomicLong> outcomes = new ConcurrentHashMap<>();

    Attacks(Target target) {
        this.t = target;
    }

    Map<String, Long> outcomes() {
        Map<String, Long> m = new TreeMap<>();
        outcomes.forEach((k, v) -> m.put(k, v.get()));
        return m;
    }

    void record(String what, long n) {
        outcomes.computeIfAbsent(what, k -> new AtomicLong()).addAndGet(n);
    }

    private void count(String what) {
        outcomes.computeIfAbsent(what, k -> new AtomicLong()).incrementAndGet();
    }

    private Socket connect() throws IOException {
        Socket s = new Socket();
        if (t.from() != null) s.bind(new InetSocketAddress(t.from(), 0));
        s.connect(new InetSocketAddress(t.host(), t.port()), 5_000);
        return s;
    }

    private static byte[] request(int maxNewTokens, String prompt) {
        return GenerateRequest.newBuilder().setPrompt(prompt).setMaxNewTokens(maxNewTokens).setIgnoreEos(true)
                .setRequestId("abuse").build().toByteArray();
    }

    private static void sleepUntil(long deadline) throws InterruptedException {
        long left = deadline - System.nanoTime();
        if (left > 0) TimeUnit.NANOSECONDS.sleep(left);
    }

    /** Runs {@code n} jobs on {@code workers} threads until done or the deadline, then stops them. */
    private void parallel(int n, int workers, long deadline, Job job) throws InterruptedException {
        AtomicLong next = new AtomicLong();
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            for (int w = 0; w < workers; w++) {
                pool.submit(() -> {
                    for (long i; (i = next.getAndIncrement()) < n && System.nanoTime() < deadline; ) {
                        try {
                            job.run((int) i);
                        } catch (IOException e) {
                            count("io error: " + e.getClass().getSimpleName());
                        }
                    }
                    return null;
                });
            }
            pool.shutdown();
            if (!pool.awaitTermination(Math.max(1, deadline - System.nanoTime()) + TimeUnit.SECONDS.toNanos(15), TimeUnit.NANOSECONDS)) {
                count("workers stopped at the deadline");
                pool.shutdownNow();
            }
        }
    }

    @FunctionalInterface
    private interface Job {
        void run(int i) throws IOException, InterruptedException;
    }

    /** {@code n} GenerateStream calls on one HTTP/2 connection whose stream windows are 0, never read, held to the deadline. */
    void slowReaders(int n, long deadline) throws IOException, InterruptedException {
        try (Socket s = connect()) {
            OutputStream out = new BufferedOutputStream(s.getOutputStream());
            out.write(H2Frames.PREFACE);
            out.write(H2Frames.settings(H2Frames.SETTINGS_INITIAL_WINDOW_SIZE, 0));
            out.flush();
            Thread.sleep(200); // the server's SETTINGS has arrived by now; acknowledge it without ever reading
            out.write(H2Frames.frame(H2Frames.SETTINGS, H2Frames.ACK, 0, new byte[0]));
            byte[] msg = request(64, "Once upon a time");
            for (int i = 0; i < n; i++) {
                int id = 2 * i + 1;
                out.write(H2Frames.grpcHeaders(id, t.authority(), STREAM_PATH, t.apiKey(), false));
                out.write(H2Frames.grpcData(id, msg, msg.length, true));
                count("streams opened");
            }
            out.flush();
            sleepUntil(deadline);
        }
    }

    /** {@code n} TCP connections that send nothing, opened at most {@code perSecond} a second, held to the deadline. */
    void connectionFlood(int n, int perSecond, long deadline) throws InterruptedException {
        List<Socket> open = new ArrayList<>();
        long start = System.nanoTime();
        try {
            for (int i = 0; i < n && System.nanoTime() < deadline; i++) {
                long due = start + (long) (i * 1e9 / perSecond);
                sleepUntil(due);
                try {
                    open.add(connect());
                    count("connections opened");
                } catch (IOException e) {
                    count("connect failed: " + e.getClass().getSimpleName());
                }
            }
            sleepUntil(deadline);
            // A connection the server closed (limit or idle timeout) reads end-of-stream at once.
            for (Socket s : open) {
                try {
                    s.setSoTimeout(1);
                    count(s.getInputStream().read() < 0 ? "closed by the server" : "server sent bytes");
                } catch (java.net.SocketTimeoutException e) {
                    count("still open at the end");
                } catch (IOException e) {
                    count("reset by the server");
                }
            }
        } finally {
            for (Socket s : open) {
                try {
                    s.close();
                } catch (IOException e) {
                    count("close failed");
                }
            }
        }
    }

    /** Connections that send random bytes, or a gRPC message truncated, or one declared 2 GiB long, {@code workers} at a time. */
    void garbage(int n, int workers, long deadline) throws InterruptedException {
        byte[] msg = request(4, "Once upon a time");
        parallel(n, workers, deadline, i -> {
            SplittableRandom r = new SplittableRandom(t.seed() + i);
            try (Socket s = connect()) {
                s.setSoTimeout(3_000);
                OutputStream out = new BufferedOutputStream(s.getOutputStream());
                String kind = switch (i % 3) {
                    case 0 -> {
                        byte[] junk = new byte[1 + r.nextInt(8192)];
                        r.nextBytes(junk);
                        out.write(junk);
                        yield "random bytes";
                    }
                    case 1 -> {
                        out.write(H2Frames.PREFACE);
                        out.write(H2Frames.settings());
                        out.write(H2Frames.grpcHeaders(1, t.authority(), STREAM_PATH, t.apiKey(), false));
                        out.write(H2Frames.grpcData(1, java.util.Arrays.copyOf(msg, msg.length / 2), msg.length, true));
                        yield "truncated grpc message";
                    }
                    default -> {
                        out.write(H2Frames.PREFACE);
                        out.write(H2Frames.settings());
                        out.write(H2Frames.grpcHeaders(1, t.authority(), STREAM_PATH, t.apiKey(), false));
                        byte[] junk = new byte[16_000];
                        r.nextBytes(junk);
                        out.write(H2Frames.grpcData(1, junk, Integer.MAX_VALUE, true));
                        yield "grpc message declared 2 GiB";
                    }
                };
                out.flush();
                count(kind + " sent");
                count(kind + ": " + drain(s.getInputStream()));
            }
        });
    }

    /** Reads until the server closes (or 3 s of silence): how the connection ended. */
    private static String drain(InputStream in) {
        byte[] buf = new byte[8192];
        long got = 0;
        try {
            for (int k; (k = in.read(buf)) >= 0; ) got += k;
            return got > 0 ? "answered, then closed by the server" : "closed by the server";
        } catch (java.net.SocketTimeoutException e) {
            return got > 0 ? "answered, connection kept open" : "no answer in 3 s";
        } catch (IOException e) {
            return "reset by the server";
        }
    }

    /**
     * One HTTP/2 connection per flood: {@code n} GenerateStream calls each reset right after it was sent (rapid reset,
     * CVE-2023-44487), {@code n} PINGs, {@code n} empty SETTINGS. A reader discards what the server sends back.
     */
    void h2Floods(int n, long deadline) throws InterruptedException {
        byte[] msg = request(16, "Once upon a time");
        parallel(3, 3, deadline, kind -> {
            String name = switch (kind) {
                case 0 -> "rapid reset";
                case 1 -> "ping flood";
                default -> "settings flood";
            };
            try (Socket s = connect()) {
                Thread reader = Thread.ofVirtual().start(() -> {
                    try {
                        s.getInputStream().transferTo(OutputStream.nullOutputStream());
                    } catch (IOException e) {
                        // the writer below reports how the connection ended
                    }
                });
                OutputStream out = new BufferedOutputStream(s.getOutputStream(), 1 << 16);
                out.write(H2Frames.PREFACE);
                out.write(H2Frames.settings());
                int sent = 0;
                try {
                    for (; sent < n && System.nanoTime() < deadline; sent++) {
                        switch (kind) {
                            case 0 -> {
                                int id = 2 * sent + 1;
                                out.write(H2Frames.grpcHeaders(id, t.authority(), STREAM_PATH, t.apiKey(), false));
                                out.write(H2Frames.grpcData(id, msg, msg.length, true));
                                out.write(H2Frames.rstStream(id, H2Frames.CANCEL));
                            }
                            case 1 -> out.write(H2Frames.ping(sent));
                            default -> out.write(H2Frames.settings());
                        }
                    }
                    out.flush();
                    count(name + ": all " + sent + " sent");
                } catch (IOException e) {
                    count(name + ": server closed the connection after " + sent + " of " + n);
                }
                s.shutdownOutput();
                reader.join(5_000);
            }
        });
    }

    /** {@code n} POSTs to /v1/completions with a 10 MB body (a JSON prompt), {@code workers} at a time. */
    void bigBodies(int n, int workers, long deadline) throws InterruptedException {
        int size = 10 << 20;
        byte[] body = new byte[size];
        java.util.Arrays.fill(body, (byte) 'a');
        byte[] head = "{\"max_tokens\":4,\"prompt\":\"".getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(head, 0, body, 0, head.length);
        body[size - 2] = '"';
        body[size - 1] = '}';
        parallel(n, workers, deadline, i -> {
            try (Socket s = connect()) {
                s.setSoTimeout(30_000);
                OutputStream out = s.getOutputStream();
                out.write(httpHead("POST", "/v1/completions", t.apiKey(), size));
                try {
                    out.write(body);
                    out.flush();
                } catch (IOException e) {
                    count("server stopped the upload: " + e.getClass().getSimpleName());
                }
                count("HTTP " + statusLine(s.getInputStream()));
            }
        });
    }

    private byte[] httpHead(String method, String path, String key, long length) {
        return (method + " " + path + " HTTP/1.1\r\nHost: " + t.authority() + "\r\n"
                + (key == null ? "" : "Authorization: Bearer " + key + "\r\n")
                + "Content-Type: application/json\r\nContent-Length: " + length + "\r\nConnection: close\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII);
    }

    private static String statusLine(InputStream in) {
        StringBuilder b = new StringBuilder();
        try {
            for (int c; (c = in.read()) >= 0 && c != '\r' && c != '\n' && b.length() < 200; ) b.append((char) c);
        } catch (IOException e) {
            return "none (" + e.getClass().getSimpleName() + ")";
        }
        String[] parts = b.toString().split(" ");
        return parts.length > 1 ? parts[1] : "none (closed)";
    }

    /** {@code n} random bodies POSTed to /v1/completions; the valid ones ask for at most 4 tokens. */
    void jsonFuzz(int n, int workers, long deadline) throws InterruptedException {
        HttpClient.Builder builder = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(5));
        if (t.from() != null) builder.localAddress(java.net.InetAddress.ofLiteral(t.from()));
        HttpClient client = builder.build();
        try (client) {
            URI uri = URI.create("http://" + t.authority() + "/v1/completions");
            parallel(n, workers, deadline, i -> {
                String body = JsonFuzz.body(new SplittableRandom(t.seed() * 31 + i));
                HttpRequest.Builder req = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                        .header("content-type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body));
                if (t.apiKey() != null) req.header("authorization", "Bearer " + t.apiKey());
                HttpResponse<Void> resp = client.send(req.build(), HttpResponse.BodyHandlers.discarding());
                count("HTTP " + resp.statusCode());
            });
        }
    }

    /** {@code n} streamed completions dropped: half right after the request is sent, half after the first chunk. */
    void disconnects(int n, int workers, long deadline) throws InterruptedException {
        // About 100 tokens (+16 new) of the bundled model's 128-token context: prefill takes a while.
        String prompt = "The quick brown fox jumps over the lazy dog. ".repeat(5);
        byte[] body = ("{\"prompt\":\"" + prompt + "\",\"max_tokens\":16,\"stream\":true,\"ignore_eos\":true}")
                .getBytes(StandardCharsets.UTF_8);
        parallel(n, workers, deadline, i -> {
            try (Socket s = connect()) {
                s.setSoTimeout(30_000);
                OutputStream out = s.getOutputStream();
                out.write(httpHead("POST", "/v1/completions", t.apiKey(), body.length));
                out.write(body);
                out.flush();
                if (i % 2 == 0) {
                    count("dropped mid-prefill");
                } else {
                    InputStream in = s.getInputStream();
                    String status = statusLine(in);
                    byte[] buf = new byte[4096];
                    boolean chunk = false;
                    for (int k; !chunk && (k = in.read(buf)) >= 0; ) {
                        chunk = new String(buf, 0, k, StandardCharsets.UTF_8).contains("data:");
                    }
                    count(chunk ? "dropped mid-decode" : "HTTP " + status + " without a chunk");
                }
                s.setSoLinger(true, 0); // an abrupt end (RST), as a killed client gives
            }
        });
    }

    /** {@code n} /v1/completions requests with a wrong key, {@code workers} at a time. */
    void wrongKeyHttp(int n, int workers, long deadline) throws InterruptedException {
        byte[] body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":4}".getBytes(StandardCharsets.UTF_8);
        parallel(n, workers, deadline, i -> {
            try (Socket s = connect()) {
                s.setSoTimeout(10_000);
                OutputStream out = s.getOutputStream();
                out.write(httpHead("POST", "/v1/completions", i % 2 == 0 ? "wrong-key" : null, body.length));
                out.write(body);
                out.flush();
                count((i % 2 == 0 ? "wrong key" : "no key") + ": HTTP " + statusLine(s.getInputStream()));
            }
        });
    }
}
