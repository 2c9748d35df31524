package io.sparseserve.metrics;

/**
 * Every meter name of the server, in one place. Names are Micrometer's dotted form; the Prometheus registry turns
 * them into the exposed names in the comments (a timer gains {@code _seconds}, a counter {@code _total}, a meter
 * with base unit bytes {@code _bytes}).
 */
public final class MeterNames {
    private MeterNames() {}

    /** {@code sparseserve_time_to_first_token_seconds}: arrival to first generated token. */
    public static final String TIME_TO_FIRST_TOKEN = "sparseserve.time.to.first.token";
    /** {@code sparseserve_inter_token_latency_seconds}: between two tokens of one sequence. */
    public static final String INTER_TOKEN_LATENCY = "sparseserve.inter.token.latency";
    /** {@code sparseserve_e2e_request_latency_seconds}: arrival to finish. */
    public static final String E2E_REQUEST_LATENCY = "sparseserve.e2e.request.latency";
    /** {@code sparseserve_request_queue_time_seconds}: arrival to first scheduled. */
    public static final String REQUEST_QUEUE_TIME = "sparseserve.request.queue.time";
    /** {@code sparseserve_step_duration_seconds}: one forward step of the scheduler, sampling included. */
    public static final String STEP_DURATION = "sparseserve.step.duration";
    /** {@code sparseserve_batch_size}: sequences per forward step. */
    public static final String BATCH_SIZE = "sparseserve.batch.size";
    /** {@code sparseserve_batch_tokens}: tokens per forward step (decodes plus prefill chunks). */
    public static final String BATCH_TOKENS = "sparseserve.batch.tokens";

    /** {@code sparseserve_requests_total{finish_reason, status}}: finished calls, by outcome. */
    public static final String REQUESTS = "sparseserve.requests";
    /** {@code sparseserve_prompt_tokens_total}. */
    public static final String PROMPT_TOKENS = "sparseserve.prompt.tokens";
    /** {@code sparseserve_generation_tokens_total}: generated tokens, cancelled sequences' included. */
    public static final String GENERATION_TOKENS = "sparseserve.generation.tokens";
    /** {@code sparseserve_preemptions_total}: sequences that lost their KV blocks and were recomputed. */
    public static final String PREEMPTIONS = "sparseserve.preemptions";

    /** {@code sparseserve_requests_running}. */
    public static final String REQUESTS_RUNNING = "sparseserve.requests.running";
    /** {@code sparseserve_requests_waiting}. */
    public static final String REQUESTS_WAITING = "sparseserve.requests.waiting";
    /** {@code sparseserve_kv_cache_usage_ratio}: fraction of KV-cache blocks in use. */
    public static final String KV_CACHE_USAGE = "sparseserve.kv.cache.usage.ratio";
    /**
     * {@code sparseserve_kv_cache_capacity_bytes}: the KV blocks' bytes in their dtype; on the CPU native memory off the
     * Java heap (reserved at start, resident as sequences fill it).
     */
    public static final String KV_CACHE_CAPACITY = "sparseserve.kv.cache.capacity";
    /** {@code sparseserve_model_weight_bytes{kind="actual"|"dense_equivalent"}}. */
    public static final String MODEL_WEIGHT = "sparseserve.model.weight";
    /** {@code sparseserve_process_resident_memory_bytes}: RSS from /proc (mapped weights count once paged in). */
    public static final String PROCESS_RESIDENT_MEMORY = "sparseserve.process.resident.memory";
    /**
     * {@code sparseserve_device_memory_used_bytes{device, kind="weights"|"kv"|"workspace"}}: what the runner holds (the
     * CPU runner: mapped or copied weights, native KV blocks, heap activation buffers).
     */
    public static final String DEVICE_MEMORY_USED = "sparseserve.device.memory.used";
    /** {@code sparseserve_device_memory_total_bytes{device}}. */
    public static final String DEVICE_MEMORY_TOTAL = "sparseserve.device.memory.total";

    public static final String TAG_FINISH_REASON = "finish_reason";
    public static final String TAG_STATUS = "status";
    public static final String TAG_KIND = "kind";
    public static final String TAG_DEVICE = "device";
}
