package io.sparseserve.metrics;

import static io.sparseserve.metrics.MeterNames.*;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.DistributionSummary;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.engine.Engine;
import io.sparseserve.engine.EngineObserver;
import io.sparseserve.engine.TokenSink;
import io.sparseserve.model.Model;
import io.sparseserve.tensor.MemoryStats;
import java.time.Duration;
import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The server's meters on one Prometheus registry: the engine's events (it is the engine's {@link EngineObserver}),
 * request outcomes counted by the server, gauges read at scrape time, and the JVM binders. Vert.x adds its own HTTP
 * server meters to the same registry.
 */
public final class ServingMetrics implements EngineObserver, AutoCloseable {
    // Bucket bounds after vLLM's, extended down to the sub-millisecond steps of small models on a CPU.
    private static final double[] TTFT_BUCKETS = {0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5,
        0.75, 1, 2.5, 5, 7.5, 10, 20, 40};
    private static final double[] ITL_BUCKETS = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15,
        0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5};
    private static final double[] REQUEST_BUCKETS = {0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1, 1.5, 2, 2.5, 5, 10, 15, 20,
        30, 40, 50, 60, 120};
    private static final double[] BATCH_BUCKETS = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    private static final double[] TOKEN_BUCKETS = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096};

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final JvmGcMetrics gc = new JvmGcMetrics();
    private final Timer ttft;
    private final Timer itl;
    private final Timer e2e;
    private final Timer queue;
    private final Timer step;
    private final DistributionSummary batchSize;
    private final DistributionSummary batchTokens;
    private final Counter promptTokens;
    private final Counter generationTokens;
    private final Counter preemptions;
    private final ConcurrentHashMap<String, Counter> requests = new ConcurrentHashMap<>();

    public ServingMetrics() {
        ttft = timer(TIME_TO_FIRST_TOKEN, "Time from a request's arrival to its first generated token", TTFT_BUCKETS);
        itl = timer(INTER_TOKEN_LATENCY, "Time between two consecutive tokens of one sequence", ITL_BUCKETS);
        e2e = timer(E2E_REQUEST_LATENCY, "Time from a request's arrival to its last token", REQUEST_BUCKETS);
        queue = timer(REQUEST_QUEUE_TIME, "Time a request waited before it was first scheduled", REQUEST_BUCKETS);
        step = timer(STEP_DURATION, "One forward step of the scheduler, sampling included", ITL_BUCKETS);
        batchSize = DistributionSummary.builder(BATCH_SIZE).description("Sequences per forward step")
                .serviceLevelObjectives(BATCH_BUCKETS).register(registry);
        batchTokens = DistributionSummary.builder(BATCH_TOKENS).description("Tokens per forward step")
                .serviceLevelObjectives(TOKEN_BUCKETS).register(registry);
        promptTokens = Counter.builder(PROMPT_TOKENS).description("Prompt tokens of requests that finished or were cancelled")
                .register(registry);
        generationTokens = Counter.builder(GENERATION_TOKENS).description("Generated tokens").register(registry);
        preemptions = Counter.builder(PREEMPTIONS).description("Sequences preempted for lack of KV-cache blocks")
                .register(registry);
        Gauge.builder(PROCESS_RESIDENT_MEMORY, MemoryStats::residentBytes).baseUnit("bytes")
                .description("Resident set size of the process").register(registry);
        new JvmMemoryMetrics().bindTo(registry);
        gc.bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ClassLoaderMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
    }

    private Timer timer(String name, String description, double[] bucketsSeconds) {
        Duration[] slo = new Duration[bucketsSeconds.length];
        for (int i = 0; i < slo.length; i++) slo[i] = Duration.ofNanos(Math.round(bucketsSeconds[i] * 1e9));
        return Timer.builder(name).description(description).serviceLevelObjectives(slo).register(registry);
    }

    public MeterRegistry registry() {
        return registry;
    }

    /** The Prometheus text exposition format (0.0.4). */
    public String scrape() {
        return registry.scrape();
    }

    /** Gauges of the model's weights. */
    public void bindModel(Model model) {
        long actual = model.weightBytes();
        long dense = model.denseEquivalentBytes();
        Gauge.builder(MODEL_WEIGHT, () -> actual).baseUnit("bytes").tag(TAG_KIND, "actual")
                .description("Bytes of the model's weights in memory").register(registry);
        Gauge.builder(MODEL_WEIGHT, () -> dense).baseUnit("bytes").tag(TAG_KIND, "dense_equivalent")
                .description("Bytes of the model's weights in memory").register(registry);
    }

    /** Gauges read from the engine at scrape time. */
    public void bindEngine(Engine engine) {
        Gauge.builder(REQUESTS_RUNNING, engine, Engine::running).description("Sequences in the running batch")
                .register(registry);
        Gauge.builder(REQUESTS_WAITING, engine, Engine::waiting).description("Sequences waiting to be scheduled")
                .register(registry);
        Gauge.builder(KV_CACHE_USAGE, engine, Engine::kvCacheUsage).description("Fraction of KV-cache blocks in use")
                .register(registry);
        Gauge.builder(KV_CACHE_CAPACITY, engine, Engine::kvCacheBytes).baseUnit("bytes")
                .description("Bytes of the KV cache (CPU: native memory, off the Java heap)").register(registry);
    }

    /**
     * Memory gauges of the runner's device, read at scrape time: used bytes by kind (weights, kv, workspace; the CPU
     * runner's weights are the mapped files, its KV blocks native memory, its workspace heap arrays) and the device's
     * total (the CPU: physical memory or the cgroup's limit).
     */
    public void bindDevice(ModelRunner runner) {
        String device = runner.device();
        usedGauge(device, "weights", () -> runner.memory().weights());
        usedGauge(device, "kv", () -> runner.memory().kv());
        usedGauge(device, "workspace", () -> runner.memory().workspace());
        Gauge.builder(DEVICE_MEMORY_TOTAL, () -> runner.memory().total()).baseUnit("bytes").tag(TAG_DEVICE, device)
                .description("Device memory in total (-1: unknown)").register(registry);
    }

    private void usedGauge(String device, String kind, LongSupplier bytes) {
        Gauge.builder(DEVICE_MEMORY_USED, bytes::getAsLong).baseUnit("bytes").tag(TAG_DEVICE, device).tag(TAG_KIND, kind)
                .description("Device memory the runner holds, by kind").register(registry);
    }

    /**
     * Counts a finished call. {@code status} is the gRPC status code name in lower case ("ok", "invalid_argument",
     * "cancelled", ...); {@code finishReason} "length", "eos_token", "stop_sequence", or "none" when it did not finish.
     */
    public void requestCompleted(String status, String finishReason) {
        String s = status.toLowerCase(Locale.ROOT);
        String f = finishReason.toLowerCase(Locale.ROOT);
        requests.computeIfAbsent(s + '\0' + f, k -> Counter.builder(REQUESTS)
                .description("Generation requests that ended, by finish reason and status")
                .tag(TAG_STATUS, s).tag(TAG_FINISH_REASON, f).register(registry)).increment();
    }

    @Override
    public void onScheduled(long queueNanos) {
        queue.record(queueNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void onFirstToken(long ttftNanos) {
        ttft.record(ttftNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void onNextToken(long gapNanos) {
        itl.record(gapNanos, TimeUnit.NANOSECONDS);
    }

    @Override
    public void onFinished(TokenSink.Finished f) {
        e2e.record(f.finishedNanos() - f.arrivalNanos(), TimeUnit.NANOSECONDS);
        promptTokens.increment(f.promptTokens());
        generationTokens.increment(f.completionTokens());
    }

    @Override
    public void onCancelled(int prompt, int completion, long e2eNanos) {
        promptTokens.increment(prompt);
        generationTokens.increment(completion);
    }

    @Override
    public void onPreempted() {
        preemptions.increment();
    }

    @Override
    public void onStep(int sequences, int tokens, long nanos) {
        step.record(nanos, TimeUnit.NANOSECONDS);
        batchSize.record(sequences);
        batchTokens.record(tokens);
    }

    @Override
    public void close() {
        gc.close();
        registry.close();
    }
}
