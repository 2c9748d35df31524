package io.sparseserve.engine;

import java.util.concurrent.ConcurrentHashMap;
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
        /** Prompt tokens given to this client's sequences in step {@code prefillStep} (scheduler thread). */
        int prefillTokens;
        long prefillStep = -1;
        private long epoch = -1;

        Client(String id) {
            this.id = id;
        }
    }

    private final ConcurrentHashMap<String, Client> byId = new ConcurrentHashMap<>();
    private long epoch;
    private int active;

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

    /** Scheduler thread: recounts each client's running sequences and how many clients have work (running or waiting). */
    void recount(Iterable<Sequence> running, Iterable<Sequence> waiting) {
        epoch++;
        active = 0;
        for (Sequence s : running) mark(s.client).running++;
        for (Sequence s : waiting) mark(s.client);
    }

    private Client mark(Client c) {
        if (c.epoch != epoch) {
            c.epoch = epoch;
            c.running = 0;
            active++;
        }
        return c;
    }

    /** Each active client's fair share of {@code total} (running slots, or a step's prompt tokens); at least 1. */
    int share(int total) {
        return Math.max(1, total / Math.max(1, active));
    }
}
