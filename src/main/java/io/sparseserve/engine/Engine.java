package io.sparseserve.engine;

import io.sparseserve.backend.DeviceFailure;
import io.sparseserve.backend.KvCapacity;
import io.sparseserve.backend.KvSizing;
import io.sparseserve.backend.ModelRunner;
import io.sparseserve.backend.RunnerConfig;
import io.sparseserve.backend.RunnerFactory;
import io.sparseserve.backend.Step;
import io.sparseserve.model.InvalidInputException;
import io.sparseserve.model.Model;
import io.sparseserve.model.ModelConfig;
import io.sparseserve.model.Tokenizer;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.concurrent.locks.LockSupport;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous batching (Orca, Yu et al. OSDI 2022; vLLM's scheduler): one scheduler thread runs forward steps
 * back to back, and between any two steps waiting sequences join the batch and finished or cancelled ones leave it.
 *
 * <p>Each step: every running sequence gets its next token computed (one token when decoding, the next chunk of its
 * prompt when prefilling), then waiting sequences are admitted while the step's token budget
 * ({@code maxBatchTokens}), the running limit and the free KV-cache blocks allow, each with a first chunk of its
 * prompt (chunked prefill, so a long prompt never stalls the decoding sequences for long). Sequences belong to
 * clients, which share the slots and each step's prompt tokens fairly ({@link Clients}): admission takes the client
 * running the fewest first, and within a client first come, first served. When a
 * running sequence needs a block and none is free, the newest running sequence is preempted: its blocks are freed,
 * it goes back to the front of the queue and is recomputed later from its prompt and the tokens it already has
 * (vLLM's recompute preemption). Every computation of the forward pass is per token, so neither batching nor
 * recomputation changes any result: a sequence gets the same tokens alone or among others.
 *
 * <p>The engine schedules and owns the block tables (plain block indices from its {@link KvBlockAllocator}); the
 * {@link ModelRunner} it opens owns the weights, the activations and the KV blocks, runs each step and returns only
 * the logits of the rows asked for, or for greedy rows only the chosen id.
 *
 * <p>Submission, cancellation and the gauges are thread-safe; everything else runs on the scheduler thread.
 */
public final class Engine implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Engine.class);
    private static final long IDLE_PARK_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    /** The least prompt tokens of one client in a step under --shared-prefill-ms (prefill stays efficient). */
    static final int MIN_SHARED_CHUNK = 16;

    /**
     * @param maxBatchTokens tokens one forward step carries at most (decodes plus prefill chunks)
     * @param maxRunning sequences in the running batch at most
     * @param maxWaiting accepted sequences waiting for admission at most; more are refused
     * @param kvCacheBytes the KV cache's budget; 0 lets the device size it (the CPU: from the host memory available; a
     *        GPU: from free device memory)
     * @param blockSize positions per KV-cache block
     * @param maxRunningPerClient running sequences of one client at most (0: no cap beyond fair sharing, see
     *        {@link Clients})
     * @param maxWaitingPerClient waiting sequences of one client at most (0: no share beyond {@code maxWaiting})
     * @param sharedPrefillMillis while more than one client has work (or recently had, see {@link Clients}), each
     *        client's prompt tokens in one step are capped at what the recent steps say runs in this long (at least
     *        {@link #MIN_SHARED_CHUNK} tokens); 0: no cap beyond the client's share of {@code maxBatchTokens}
     */
    public record Config(int maxBatchTokens, int maxRunning, int maxWaiting, long kvCacheBytes, int blockSize,
            int maxRunningPerClient, int maxWaitingPerClient, double sharedPrefillMillis) {
        /** {@code --shared-prefill-ms}'s default. */
        public static final double DEFAULT_SHARED_PREFILL_MILLIS = 10;

        public static Config defaults() {
            return new Config(512, 64, 256, 0, RunnerConfig.DEFAULT_BLOCK_SIZE);
        }

        /** Without per-client caps (clients still share the slots and steps fairly). */
        public Config(int maxBatchTokens, int maxRunning, int maxWaiting, long kvCacheBytes, int blockSize) {
            this(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes, blockSize, 0, 0);
        }

        public Config(int maxBatchTokens, int maxRunning, int maxWaiting, long kvCacheBytes, int blockSize,
                int maxRunningPerClient, int maxWaitingPerClient) {
            this(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes, blockSize, maxRunningPerClient,
                    maxWaitingPerClient, DEFAULT_SHARED_PREFILL_MILLIS);
        }

        public Config withClientLimits(int runningPerClient, int waitingPerClient) {
            return new Config(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes, blockSize, runningPerClient,
                    waitingPerClient, sharedPrefillMillis);
        }

        public Config withSharedPrefillMillis(double millis) {
            return new Config(maxBatchTokens, maxRunning, maxWaiting, kvCacheBytes, blockSize, maxRunningPerClient,
                    maxWaitingPerClient, millis);
        }

        Config validate() {
            if (maxRunning < 1) throw new InvalidInputException("--max-running must be >= 1, got " + maxRunning);
            if (maxBatchTokens < maxRunning) {
                throw new InvalidInputException("--max-batch-tokens must be >= --max-running (" + maxRunning
                        + ", one decode token per running sequence), got " + maxBatchTokens);
            }
            if (maxWaiting < 0) throw new InvalidInputException("--max-waiting must be >= 0, got " + maxWaiting);
            if (kvCacheBytes < 0) throw new InvalidInputException("--kv-cache-bytes must be >= 0 (0 = auto), got " + kvCacheBytes);
            if (blockSize < 1) throw new InvalidInputException("block size must be >= 1, got " + blockSize);
            if (maxRunningPerClient < 0) {
                throw new InvalidInputException("--max-running-per-client must be >= 0 (0 = no cap), got " + maxRunningPerClient);
            }
            if (maxWaitingPerClient < 0) {
                throw new InvalidInputException("--max-waiting-per-client must be >= 0 (0 = no cap), got " + maxWaitingPerClient);
            }
            if (!(sharedPrefillMillis >= 0 && sharedPrefillMillis <= 60_000)) {
                throw new InvalidInputException("--shared-prefill-ms must be in [0, 60000] (0 = no cap), got " + sharedPrefillMillis);
            }
            return this;
        }
    }

    /** A submitted sequence, seen from outside the engine. */
    public interface Handle {
        /** Stops the sequence before the next step and frees its blocks; its sink gets no more events. */
        void cancel();

        /** Skips the sequence's steps (keeping its blocks) until {@link #resume}: back-pressure from a slow reader. */
        void pause();

        void resume();
    }

    /** Thrown by {@link #submit} when {@code maxWaiting} sequences are already waiting. */
    public static final class QueueFullException extends RuntimeException {
        QueueFullException(String message) {
            super(message);
        }
    }

    /** Thrown by {@link #submit} after {@link #close}, and given to sinks of sequences still running then. */
    public static final class ClosedException extends RuntimeException {
        ClosedException(String message) {
            super(message);
        }
    }

    private final Model model;
    private final ModelConfig c;
    private final Tokenizer tokenizer;
    private final Config config;
    private final EngineObserver observer;
    private final ModelRunner runner;
    private final KvBlockAllocator allocator;
    private final Step batch;
    private final float[] logits;
    private final int[] argmax;
    private final Sampler.Scratch scratch;

    private final Clients clients = new Clients();
    private final ConcurrentLinkedQueue<Sequence> inbox = new ConcurrentLinkedQueue<>();
    private final AtomicInteger queued = new AtomicInteger(); // submitted, never admitted, not cancelled
    private final ArrayDeque<Sequence> waiting = new ArrayDeque<>();
    private final ArrayList<Sequence> running = new ArrayList<>();
    // Paused (slow-reader) sequences moved out of the batch under pressure, without KV blocks; resumed ones go back
    // to the front of the queue and are recomputed like preempted ones.
    private final ArrayList<Sequence> parked = new ArrayList<>();
    private final Sequence[] stepSeqs;
    private final int[] stepCounts;
    private final Thread thread;
    private final Object idle = new Object();
    private volatile boolean closing;
    // Set once when a step throws DeviceFailure: the scheduler stops and the listeners (the server) are told.
    private volatile DeviceFailure deviceFailure;
    private final CopyOnWriteArrayList<Consumer<DeviceFailure>> failureListeners = new CopyOnWriteArrayList<>();

    // Published by the scheduler after every step, for gauges and tests.
    private volatile int runningCount;
    private volatile int preemptedWaiting;
    private volatile int parkedCount;
    private volatile int freeBlocks;
    private volatile boolean busy;
    private long stepNumber; // scheduler thread: numbers the steps, for the per-client prompt-token shares
    private boolean express; // scheduler thread: the step being built is an express step (see expressStep)
    private double nanosPerToken = Double.NaN; // scheduler thread: a moving average of a step's wall time per token

    /**
     * Opens a runner from {@code runners} sized for the configuration (steps of maxBatchTokens tokens and maxRunning
     * sequences; KV blocks as --kv-cache-bytes says, else as the device decides) and starts the scheduler. The engine
     * closes the runner when it closes.
     */
    public Engine(Model model, Tokenizer tokenizer, RunnerFactory runners, Config config, EngineObserver observer) {
        this.model = model;
        this.c = model.config();
        this.tokenizer = tokenizer;
        this.config = config.validate();
        this.observer = observer;
        KvCapacity kv = config.kvCacheBytes() > 0 ? new KvCapacity.Bytes(config.kvCacheBytes())
                : new KvCapacity.Auto(config.maxRunning(), c.maxPositions());
        this.runner = runners.open(model, new RunnerConfig(config.maxBatchTokens(), config.maxRunning(), config.blockSize(), kv));
        int fullSequence = KvSizing.blocksFor(c.maxPositions(), config.blockSize());
        if (runner.kvBlocks() < fullSequence) {
            int blocks = runner.kvBlocks();
            long perBlock = runner.kvBlockBytes();
            runner.close();
            throw new InvalidInputException("--kv-cache-bytes " + config.kvCacheBytes() + " holds " + blocks
                    + " blocks; one sequence of the full context length " + c.maxPositions() + " needs " + fullSequence
                    + " (at least " + fullSequence * perBlock + " bytes)");
        }
        this.allocator = new KvBlockAllocator(runner.kvBlocks());
        this.batch = new Step(config.maxBatchTokens(), config.maxRunning());
        this.logits = new float[config.maxRunning() * c.vocab()];
        this.argmax = new int[config.maxRunning()];
        this.scratch = new Sampler.Scratch(c.vocab());
        this.stepSeqs = new Sequence[config.maxRunning()];
        this.stepCounts = new int[config.maxRunning()];
        this.freeBlocks = allocator.freeBlocks();
        this.thread = Thread.ofPlatform().name("sparse-serve-scheduler").daemon(true).unstarted(this::loop);
        thread.start();
        log.info("engine on {}: {} KV blocks of {} positions ({} MiB, {}), max {} running, {} tokens per step, {} waiting",
                runner.device(), runner.kvBlocks(), config.blockSize(), kvCacheBytes() >> 20, runner.kvDtype().label(),
                config.maxRunning(), config.maxBatchTokens(), config.maxWaiting());
    }

    public ModelConfig modelConfig() {
        return c;
    }

    public Config config() {
        return config;
    }

    public Tokenizer tokenizer() {
        return tokenizer;
    }

    public Model model() {
        return model;
    }

    /** {@link #submit(GenerationRequest, TokenSink, String)} for one anonymous client. */
    public Handle submit(GenerationRequest request, TokenSink sink) {
        return submit(request, sink, "");
    }

    /**
     * Validates the request and queues it for {@code client} (an identity the caller chose: the engine shares its
     * slots fairly between clients, see {@link Clients}). Never blocks. Throws {@link InvalidInputException} for a bad
     * request, {@link QueueFullException} when the queue (or the client's share of it) is full and
     * {@link ClosedException} after {@link #close}.
     */
    public Handle submit(GenerationRequest request, TokenSink sink, String client) {
        request.validate(c, tokenizer);
        DeviceFailure failed = deviceFailure;
        if (failed != null) throw new ClosedException("the device failed: " + failed.getMessage());
        if (closing) throw new ClosedException("the engine is shutting down");
        Clients.Client who = clients.acquire(client);
        Sequence seq;
        try {
            // Built before a waiting slot is counted: a throw here must not leak the slot.
            seq = new Sequence(this, request, sink, new BlockTable(allocator, config.blockSize()), scratch, c, tokenizer,
                    System.nanoTime(), who);
        } catch (RuntimeException | Error e) {
            clients.release(who);
            throw e;
        }
        int perClient = config.maxWaitingPerClient();
        if (who.queued.incrementAndGet() > perClient && perClient > 0) {
            who.queued.decrementAndGet();
            clients.release(who);
            throw new QueueFullException("this client has " + perClient + " requests waiting (--max-waiting-per-client)");
        }
        if (queued.incrementAndGet() > config.maxWaiting()) {
            unqueue(seq);
            clients.release(who);
            throw new QueueFullException("the queue is full: " + config.maxWaiting() + " requests are waiting (--max-waiting)");
        }
        inbox.add(seq);
        // close() may have begun between the check above and the add, and the scheduler's final drain may already
        // be over: then nobody would ever answer this sequence. If closing is still false here, the final drain
        // (which runs after closing is set) sees it; otherwise take it back, unless the scheduler already has it.
        if (closing && inbox.remove(seq)) {
            unqueue(seq);
            clients.release(who);
            throw new ClosedException("the engine is shutting down");
        }
        wake();
        return seq;
    }

    /** A sequence leaves the waiting queue (admitted, cancelled or refused) before it ever ran. */
    private void unqueue(Sequence s) {
        queued.decrementAndGet();
        s.client.queued.decrementAndGet();
    }

    /** Clients with sequences in the engine now (for tests and gauges). */
    public int clients() {
        return clients.size();
    }

    /**
     * Calls {@code listener} once, on the scheduler thread, when a step fails with a {@link DeviceFailure} (a sticky
     * device error: the device cannot run another step). By then the scheduler has stopped and every sequence has been
     * failed with {@link ClosedException}. Registered after the failure, it is called at once.
     */
    public void onDeviceFailure(Consumer<DeviceFailure> listener) {
        failureListeners.add(listener);
        DeviceFailure failed = deviceFailure;
        if (failed != null && failureListeners.remove(listener)) listener.accept(failed);
    }

    /** The sticky device failure that stopped the scheduler, or null. */
    public DeviceFailure deviceFailure() {
        return deviceFailure;
    }

    /** Sequences in the running batch. */
    public int running() {
        return runningCount;
    }

    /** Paused sequences (their clients stopped reading) that gave their slot and KV blocks back. */
    public int parked() {
        return parkedCount;
    }

    /** Sequences waiting to be admitted (new ones, and preempted ones waiting to be recomputed). */
    public int waiting() {
        return queued.get() + preemptedWaiting;
    }

    /** Fraction of KV-cache blocks in use. */
    public double kvCacheUsage() {
        return 1.0 - (double) freeBlocks / allocator.totalBlocks();
    }

    public int kvFreeBlocks() {
        return freeBlocks;
    }

    public int kvTotalBlocks() {
        return allocator.totalBlocks();
    }

    public long kvCacheBytes() {
        return runner.kvBlocks() * runner.kvBlockBytes();
    }

    /** The runner: its device, and its memory by kind for the gauges (readable from any thread). */
    public ModelRunner runner() {
        return runner;
    }

    /** Waits until no sequence is running or waiting; false if {@code timeout} passed first. */
    public boolean awaitIdle(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (idle) {
            while (!isIdle()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) return false;
                TimeUnit.NANOSECONDS.timedWait(idle, left);
            }
        }
        return true;
    }

    private boolean isIdle() {
        return !busy && inbox.isEmpty() && queued.get() == 0;
    }

    /** Stops the scheduler; sequences still running or waiting get {@link ClosedException}. Closes the runner. */
    @Override
    public void close() {
        closing = true;
        wake();
        try {
            thread.join(TimeUnit.SECONDS.toMillis(30));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) return; // a step still running keeps the runner (and the device) until it ends
        try {
            runner.close();
        } catch (RuntimeException e) {
            if (deviceFailure == null) throw e;
            // After a sticky error every device call fails: nothing more can be freed; the process is about to exit.
            log.warn("closing the runner after the device failure: {}", e.toString());
        }
    }

    void wake() {
        LockSupport.unpark(thread);
    }

    private void loop() {
        while (!closing) {
            try {
                drainInbox();
                removeCancelled();
                unparkResumed();
                if (running.isEmpty() && waiting.isEmpty()) {
                    publish();
                    LockSupport.parkNanos(this, IDLE_PARK_NANOS);
                    continue;
                }
                long start = System.nanoTime();
                int n = schedule(start);
                publish();
                if (n == 0) { // every running sequence paused by back-pressure: resume(), submit() and cancel() wake us
                    // Checked again right before sleeping: a wake-up's permit may have been used up by a park
                    // inside the last forward step (CpuPool waits with parkNanos on this thread).
                    if (nothingToDo()) LockSupport.parkNanos(this, IDLE_PARK_NANOS);
                    continue;
                }
                step(n, start);
            } catch (DeviceFailure e) {
                log.error("the device failed; stopping the scheduler (a restart is needed)", e);
                deviceFailure = e;
                closing = true;
            } catch (RuntimeException | Error e) {
                log.error("scheduler step failed; failing the sequences of the step", e);
                failRunning(e);
            }
        }
        DeviceFailure failed = deviceFailure;
        ClosedException closed = new ClosedException(failed != null ? "the device failed: " + failed.getMessage()
                : "the engine shut down before the request finished");
        for (int i = 0; i < stepSeqs.length; i++) stepSeqs[i] = null;
        drainInbox();
        for (Sequence s : running) abort(s, closed);
        for (Sequence s : waiting) abort(s, closed);
        for (Sequence s : parked) abort(s, closed);
        running.clear();
        waiting.clear();
        parked.clear();
        preemptedWaiting = 0;
        publish();
        if (failed != null) {
            for (Consumer<DeviceFailure> listener : failureListeners) {
                if (!failureListeners.remove(listener)) continue; // called once, even if registered concurrently
                try {
                    listener.accept(failed);
                } catch (RuntimeException e) {
                    log.error("device failure listener failed", e);
                }
            }
        }
    }

    private void drainInbox() {
        for (Sequence s; (s = inbox.poll()) != null; ) waiting.addLast(s);
    }

    /** Cancelled sequences leave at once: blocks back to the pool, no more output. */
    private void removeCancelled() {
        long now = System.nanoTime();
        for (int i = running.size() - 1; i >= 0; i--) {
            Sequence s = running.get(i);
            if (s.cancelled) {
                running.remove(i);
                dropCancelled(s, now);
            }
        }
        for (int i = parked.size() - 1; i >= 0; i--) {
            Sequence s = parked.get(i);
            if (s.cancelled) {
                parked.remove(i);
                dropCancelled(s, now);
            }
        }
        if (!waiting.isEmpty()) {
            waiting.removeIf(s -> {
                if (!s.cancelled) return false;
                if (!s.admitted) unqueue(s);
                else preemptedWaiting--;
                dropCancelled(s, now);
                return true;
            });
        }
    }

    private void dropCancelled(Sequence s, long now) {
        s.table.release();
        clients.release(s.client);
        observer.onCancelled(s.promptLength, s.generated(), now - s.arrivalNanos);
    }

    /** Whether every sequence is paused and nothing new came in: then the scheduler may sleep until woken. */
    private boolean nothingToDo() {
        if (!inbox.isEmpty()) return false;
        for (Sequence s : running) if (!s.paused || s.cancelled) return false;
        for (Sequence s : parked) if (!s.paused || s.cancelled) return false;
        return true;
    }

    /** Resumed parked sequences go to the front of the queue, to be recomputed (as after a preemption). */
    private void unparkResumed() {
        for (int i = parked.size() - 1; i >= 0; i--) {
            Sequence s = parked.get(i);
            if (!s.paused) {
                parked.remove(i);
                waiting.addFirst(s);
                preemptedWaiting++;
            }
        }
        parkedCount = parked.size();
    }

    /**
     * A paused sequence (its client stopped reading) leaves the batch when anyone waits for a slot: it gives its slot
     * and its KV blocks back and is recomputed when its client reads again. Without this, a few slow readers would
     * hold every slot and block while admitting nobody.
     */
    private void park(Sequence s) {
        running.remove(s);
        s.table.release();
        s.computed = 0;
        s.preemptions++;
        parked.add(s);
        parkedCount = parked.size();
        observer.onPreempted();
    }

    /** The newest paused sequence in the batch other than {@code except}, or null. */
    private Sequence pausedVictim(Sequence except) {
        for (int i = running.size() - 1; i >= 0; i--) {
            Sequence s = running.get(i);
            if (s.paused && s != except) return s;
        }
        return null;
    }

    /** Fills the batch; returns how many sequences it carries. */
    private int schedule(long now) {
        batch.clear();
        int budget = config.maxBatchTokens();
        int n = 0;
        if (!waiting.isEmpty()) {
            for (Sequence p; (p = pausedVictim(null)) != null; ) park(p);
        }
        clients.recount(running, waiting, now);
        if (!waiting.isEmpty()) rebalance();
        int prefillShare = clients.prefillShare(config.maxBatchTokens());
        if (clients.prefillClients() > 1) prefillShare = Math.min(prefillShare, sharedChunk());
        express = !express && expressStep();
        stepNumber++;
        for (int i = 0; i < running.size() && budget > 0; i++) {
            Sequence s = running.get(i);
            if (s.paused) continue;
            int count = chunk(s, budget, prefillShare);
            if (count == 0) continue; // its client's prompt tokens for this step are used up
            boolean preemptedSelf = false;
            while (!s.table.ensure(s.computed + count)) {
                Sequence idle = pausedVictim(s);
                if (idle != null) { // blocks held by a slow reader go first
                    if (running.indexOf(idle) < i) i--;
                    park(idle);
                    continue;
                }
                Sequence victim = running.removeLast();
                preempt(victim);
                if (victim == s) {
                    preemptedSelf = true;
                    break;
                }
            }
            if (preemptedSelf) break;
            n = add(n, s, count);
            budget -= count;
        }
        if (!waiting.isEmpty()) clients.recount(running, waiting, now); // running may have changed above (preemptions)
        while (budget > 0 && running.size() < config.maxRunning() && !waiting.isEmpty()) {
            Sequence s = nextFair(express);
            if (s == null) break; // every waiting client is at --max-running-per-client (or, express, is prefilling)
            int count = chunk(s, budget, prefillShare);
            if (count == 0) break; // the fair choice's client has no prompt tokens left this step
            if (!s.table.ensure(s.computed + count)) break; // the fair choice waits for blocks: nobody overtakes it
            waiting.remove(s);
            s.client.running++;
            if (!s.admitted) {
                s.admitted = true;
                unqueue(s);
            } else {
                preemptedWaiting--;
            }
            if (s.scheduledNanos < 0) {
                s.scheduledNanos = now;
                observer.onScheduled(now - s.arrivalNanos);
            }
            running.add(s);
            n = add(n, s, count);
            budget -= count;
        }
        busy = !running.isEmpty() || !waiting.isEmpty() || !parked.isEmpty();
        return n;
    }

    /**
     * A client's prompt tokens per step while other clients have work too (or finished a request within
     * {@link Clients#RECENT_NANOS}): what the recent steps say runs in --shared-prefill-ms. A step's length is what a newly arrived request waits before its own step can start, and
     * on a CPU a step's time grows with every prompt token it carries (past a few dozen tokens the matmuls are bound
     * by arithmetic, so longer chunks buy no throughput); so one client's long prompts, chunked to this, keep every
     * other client's time to first token near its own prompt's cost. Sarathi-Serve (Agrawal et al., OSDI 2024) sizes
     * its chunks from a latency target the same way. Measured per token from the steps of at least
     * {@link #MIN_SHARED_CHUNK} tokens (a moving average of their wall time, so a machine that is also busy with
     * something else gets shorter chunks); no cap before the first such step.
     */
    private int sharedChunk() {
        double target = config.sharedPrefillMillis() * 1e6;
        if (target <= 0 || Double.isNaN(nanosPerToken)) return Integer.MAX_VALUE;
        return (int) Math.max(MIN_SHARED_CHUNK, Math.min(Integer.MAX_VALUE, target / nanosPerToken));
    }

    /**
     * Tokens of {@code s} to compute this step: one when decoding; when prefilling (or recomputing), the next chunk of
     * its prompt, at most the step's budget left and what is left of its client's share of the step's prompt tokens
     * ({@code share}: --max-batch-tokens / clients with work or recently finished, capped by {@link #sharedChunk}).
     * The share keeps one client's long prompts from making every step long, which is what delays everyone else's
     * first token; a lone client gets the whole budget.
     */
    private int chunk(Sequence s, int budget, int share) {
        int want = s.length - s.computed;
        if (want <= 1) return Math.min(want, budget);
        Clients.Client c = s.client;
        if (express && c.prefilling > 0) return 0; // an express step: only the clients that are not prefilling
        if (c.prefillStep != stepNumber) {
            c.prefillStep = stepNumber;
            c.prefillTokens = 0;
        }
        int count = Math.min(want, Math.min(budget, share - c.prefillTokens));
        if (count <= 0) return 0;
        c.prefillTokens += count;
        return count;
    }

    /**
     * Whether the step being built is an express step: a slot is free, a client that is not prefilling anything waits
     * with a new request, and another client's sequences are prefilling. An express step admits only the clients that
     * are not prefilling and carries no prompt tokens of the others (their decodes still run), so that a newly
     * arrived short request waits for the step in flight and then its own step, not for a step that also carries a
     * chunk of someone else's prompt. Never two in a row (the caller alternates), so a prefilling client still gets
     * its chunk at least every other step, however often others arrive. A lone client never gets one.
     *
     * <p>Measured in the adversarial suite's JSON fuzz on a 2-core machine (the other client's valid requests are
     * ~50-token prompts, prefilled at ~1 ms a token while the machine is saturated): the well-behaved client's
     * server-side TTFT was about two such steps, since its request's step also carried the fuzz's chunk.
     */
    private boolean expressStep() {
        if (waiting.isEmpty() || running.size() >= config.maxRunning()) return false;
        boolean othersPrefilling = false;
        for (Sequence s : running) {
            if (!s.paused && s.client.prefilling > 0) {
                othersPrefilling = true;
                break;
            }
        }
        return othersPrefilling && nextFair(true) != null;
    }

    /**
     * The waiting sequence to admit next: of the clients below --max-running-per-client (and, in an express step,
     * not prefilling), the one running the fewest sequences; its first in the queue (preempted and resumed ones are
     * at the front). Null if no waiting client qualifies.
     */
    private Sequence nextFair(boolean expressOnly) {
        int cap = config.maxRunningPerClient();
        Sequence best = null;
        for (Sequence s : waiting) {
            int r = s.client.running;
            if (cap > 0 && r >= cap) continue;
            if (expressOnly && s.client.prefilling > 0) continue;
            if (best == null || r < best.client.running) {
                best = s;
                if (r == 0) break; // nobody runs fewer
            }
        }
        return best;
    }

    /**
     * Every slot taken while a client below its fair share waits: the newest sequence of the client furthest above
     * its share is preempted (one a step, before the step is built), so that the waiting one gets its slot next.
     */
    private void rebalance() {
        if (running.size() < config.maxRunning()) return;
        Sequence next = nextFair(false);
        int share = clients.share(config.maxRunning());
        if (next == null || next.client.running >= share) return;
        Sequence victim = null;
        for (int i = running.size() - 1; i >= 0; i--) {
            Sequence s = running.get(i);
            if (s.client.running > share && (victim == null || s.client.running > victim.client.running)) victim = s;
        }
        if (victim == null) return;
        running.remove(victim);
        victim.client.running--;
        preempt(victim);
    }

    private int add(int n, Sequence s, int count) {
        // A greedy row that nothing else reads the logits of (or a prompt chunk that is not the last, whose output
        // is thrown away) asks for the argmax only: a GPU then copies back one int instead of a vocabulary row.
        boolean argmaxOnly = s.computed + count < s.length || s.argmaxSuffices();
        // Its prompt's positions are prompt tokens (a runner may compute those on a zero-skipping kernel); generated
        // ones, recomputed after a preemption too, keep the decode arithmetic, so recomputing changes nothing.
        batch.add(s.tokens, s.computed, count, s.computed, s.table.blocks(), s.table.blockCount(),
                argmaxOnly ? Step.Output.LAST_ARGMAX : Step.Output.LAST_LOGITS, s.promptLength);
        stepSeqs[n] = s;
        stepCounts[n] = count;
        return n + 1;
    }

    private void preempt(Sequence s) {
        s.table.release();
        s.computed = 0;
        s.preemptions++;
        waiting.addFirst(s);
        preemptedWaiting++;
        observer.onPreempted();
    }

    private void step(int n, long start) {
        long forwardStart = System.nanoTime();
        runner.forward(batch, logits, argmax);
        long now = System.nanoTime();
        if (batch.tokens() >= MIN_SHARED_CHUNK) {
            double perToken = (double) (now - forwardStart) / batch.tokens();
            nanosPerToken = Double.isNaN(nanosPerToken) ? perToken : 0.75 * nanosPerToken + 0.25 * perToken;
        }
        int vocab = c.vocab();
        int row = 0;
        for (int i = 0; i < n; i++) {
            Sequence s = stepSeqs[i];
            stepSeqs[i] = null;
            s.computed += stepCounts[i];
            boolean argmaxOnly = batch.output(i) == Step.Output.LAST_ARGMAX;
            int offset = row * vocab;
            if (!argmaxOnly) row++;
            if (s.computed < s.length) continue; // a prompt chunk that is not the last
            FinishReason reason;
            try {
                reason = argmaxOnly ? s.advance(argmax[i], null, -1, now, observer) : s.advance(logits, offset, now, observer);
            } catch (RuntimeException e) {
                log.error("sequence {} failed", s.request.requestId(), e);
                running.remove(s);
                abort(s, e);
                continue;
            }
            if (reason != null) finish(s, reason, now);
        }
        observer.onStep(n, batch.tokens(), System.nanoTime() - start);
        publish();
    }

    private void finish(Sequence s, FinishReason reason, long now) {
        running.remove(s);
        s.table.release();
        clients.finished(s.client, now);
        clients.release(s.client);
        TokenSink.Finished f = new TokenSink.Finished(reason, s.promptLength, s.generated(), s.arrivalNanos,
                s.scheduledNanos, s.firstTokenNanos, now, s.preemptions);
        observer.onFinished(f);
        try {
            s.sink.onFinish(s.takeDelta(now), f);
        } catch (RuntimeException e) {
            log.error("sink of {} failed", s.request.requestId(), e);
        }
    }

    private void failRunning(Throwable e) {
        for (int i = 0; i < stepSeqs.length; i++) stepSeqs[i] = null;
        for (Sequence s : running) abort(s, e);
        running.clear();
        publish();
    }

    private void abort(Sequence s, Throwable e) {
        s.table.release();
        if (!s.admitted) unqueue(s);
        clients.release(s.client);
        try {
            s.sink.onError(e);
        } catch (RuntimeException ex) {
            log.error("sink of {} failed", s.request.requestId(), ex);
        }
    }

    private void publish() {
        runningCount = running.size();
        parkedCount = parked.size();
        freeBlocks = allocator.freeBlocks();
        busy = !running.isEmpty() || !waiting.isEmpty() || !parked.isEmpty();
        if (!busy && inbox.isEmpty()) {
            synchronized (idle) {
                idle.notifyAll();
            }
        }
    }
}
