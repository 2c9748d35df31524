package io.sparseserve.engine;

import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The clients the engine shares its slots between (the server says who a client is: see {@code ClientIdentity}).
 * One {@link Client} per identity while it has sequences in the engine, dropped with its last one, so that a stream
 * of distinct addresses leaves nothing behind.
 *
 * <p>Fair admission is max-min fairness over running slots (as in fair queueing, Demers, Keshav and Shenker,
 * SIGCOMM 1989, applied to slots rather than bytes): when a slot frees, the waiting sequence whose client runs the
 * fewest sequences goes first (ties: first come, first served); and when every slot is taken while a client below its
 * fair share ({@code maxRunning / clients with work}) waits, one sequence of a client above its share is preempted
 * per step (recomputed later, as vLLM's recompute preemption). A lone client therefore still gets every slot. Each
 * step's prompt tokens are shared the same way (see {@code Engine.chunk}).
 */
final class Clients {
    /** One client's counts. {@code refs} and {@code queued} are thread-safe; the rest belongs to the scheduler. */
    static final class Client {
        final String id;
        private int refs; // sequences of this client in the engine; guarded by the map's compute
        /** Submitted, not yet admitted, not cancelled: the client's share of the waiting queue. */
        final AtomicInteger queued = new AtomicInteger();
        /** Running sequences, recounted by {@link #recount} before each step. */
        int running;
        /** Of those, the ones still prefilling (or recomputing) their prompt, recounted with {@link #running}. */
        int prefilling;
        /** Prompt tokens given to this client's sequences in step {@code prefillStep} (scheduler thread). */
        int prefillTokens;
        long prefillStep = -1;
        private long epoch = -1;

        Client(String id) {
            this.id = id;
        }
    }

    /**
     * How long a client whose last sequence finished still counts for the shares of a step's prompt tokens. A client
     * that streams one request after another has none in the engine between two of them; without this, every time it
     * came back it found a step in flight that carried a lone other client's whole --max-batch-tokens of prompt (1.4 s
     * on 2 cores for a stories110M-shape model), and waited for it.
     */
    static final long RECENT_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final ConcurrentHashMap<String, Client> byId = new ConcurrentHashMap<>();
    private final Map<String, Long> recent = new HashMap<>(); // scheduler thread: id -> when its last sequence finished
    private long epoch;
    private int active;
    private int prefillActive;

    /** The client of a new sequence (any thread); every acquire is matched by one {@link #release}. */
    Client acquire(String id) {
        return byId.compute(id, (k, c) -> {
            Client client = c == null ? new Client(k) : c;
            client.refs++;
            return client;
        });
    }

    /** The sequence is gone from the engine; the client is forgotten with its last sequence. */
    void release(Client client) {
        byId.computeIfPresent(client.id, (k, c) -> --c.refs == 0 ? null : c);
    }

    /** Clients known now (with at least one sequence in the engine). */
    int size() {
        return byId.size();
    }

    /** Scheduler thread: a sequence of {@code c} finished at {@code now} (see {@link #RECENT_NANOS}). */
    void finished(Client c, long now) {
        recent.put(c.id, now);
    }

    /**
     * Scheduler thread: recounts each client's running sequences, how many clients have work (running or waiting),
     * and how many share a step's prompt tokens (those, and those whose last sequence finished in the last
     * {@link #RECENT_NANOS}).
     */
    void recount(Iterable<Sequence> running, Iterable<Sequence> waiting, long now) {
        epoch++;
        active = 0;
        for (Sequence s : running) {
            Client c = mark(s.client);
            c.running++;
            if (s.length - s.computed > 1) c.prefilling++;
        }
        for (Sequence s : waiting) mark(s.client);
        prefillActive = active;
        for (Iterator<Map.Entry<String, Long>> it = recent.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<String, Long> e = it.next();
            if (now - e.getValue() > RECENT_NANOS) {
                it.remove();
            } else {
                Client c = byId.get(e.getKey());
                if (c == null || c.epoch != epoch) prefillActive++;
            }
        }
    }

    private Client mark(Client c) {
        if (c.epoch != epoch) {
            c.epoch = epoch;
            c.running = 0;
            c.prefilling = 0;
            active++;
        }
        return c;
    }

    /** Clients that share a step's prompt tokens at the last {@link #recount}: with work, or recently finished. */
    int prefillClients() {
        return prefillActive;
    }

    /** Each of {@link #prefillClients}'s share of {@code total} prompt tokens; at least 1. */
    int prefillShare(int total) {
        return Math.max(1, total / Math.max(1, prefillActive));
    }

    /** Each active client's fair share of {@code total} (running slots, or a step's prompt tokens); at least 1. */
    int share(int total) {
        return Math.max(1, total / Math.max(1, active));
    }
}
