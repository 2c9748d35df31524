package io.sparseserve.backend.cpu;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.concurrent.locks.LockSupport;

/**
 * The one fixed pool that every CPU kernel runs on, sized to the physical cores. A call splits a range into one
 * contiguous chunk per thread; the calling thread runs chunk 0 itself, so a pool of one thread costs nothing.
 * Workers spin briefly before parking: a decode step issues a few hundred short parallel loops, and waking a
 * parked thread costs more than most of them take.
 *
 * <p>A chunk is claimed before it runs (by its worker, stamped with the job's generation), and the caller, once its
 * own chunk is done, runs every chunk no worker has claimed yet: on a machine whose cores are also busy with other
 * work (the network threads, another process), a worker the OS has not scheduled no longer holds up the whole step
 * at the barrier (a JFR profile under the adversarial suite's JSON fuzz had the step waiting on such a worker most of
 * the time). A chunk computes the same rows whichever thread runs it, so results do not change.
 */
public final class CpuPool {

    /** A piece of parallel work: the half-open range [start, end) of items, run by thread {@code thread}. */
    @FunctionalInterface
    public interface RangeTask {
        void run(int start, int end, int thread);
    }

    private static final CpuPool SHARED = new CpuPool(defaultThreads());
    private static final int SPINS = 20_000;

    private final int threads;
    private final Worker[] workers;
    private final AtomicInteger pending = new AtomicInteger();
    private final AtomicLongArray claimed; // [chunk]: the generation of the last job whose chunk was claimed
    private volatile Thread caller;
    private volatile RuntimeException failure;

    // The job being run: written by the caller before bumping the generation, read by workers after seeing it.
    private volatile RangeTask task;
    private int n;
    private int granule;
    private volatile long generation;

    public CpuPool(int threads) {
        if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        this.threads = threads;
        this.workers = new Worker[threads - 1];
        this.claimed = new AtomicLongArray(threads);
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Worker(i + 1);
            Thread t = new PoolThread(workers[i], "sparse-serve-cpu-" + (i + 1));
            workers[i].thread = t;
            t.start();
        }
    }

    /** The process-wide pool (system property {@code sparseserve.threads} overrides its size). */
    public static CpuPool shared() {
        return SHARED;
    }

    public int threads() {
        return threads;
    }

    /** Runs {@code task} over [0, n) split into per-thread chunks whose boundaries are multiples of granule. */
    public void parallelFor(int n, int granule, RangeTask task) {
        if (n <= 0) return;
        int units = (n + granule - 1) / granule;
        Thread me = Thread.currentThread();
        if (threads == 1 || units == 1 || nested(me)) {
            task.run(0, n, 0);
            return;
        }
        synchronized (this) {
            this.task = task;
            this.n = n;
            this.granule = granule;
            this.failure = null;
            this.caller = Thread.currentThread();
            pending.set(threads - 1);
            long gen = generation + 1;
            generation = gen;
            for (Worker w : workers) LockSupport.unpark(w.thread);
            // The caller's own chunk may throw too: it must still wait for the workers and clear the job, or the
            // next call from this thread would see task != null and run everything inline on one thread, silently.
            Throwable own = null;
            try {
                runChunk(0);
            } catch (RuntimeException | Error e) {
                own = e;
            }
            // Chunks whose worker has not started yet: run them here rather than wait for that worker.
            for (int k = 1; k < threads && own == null; k++) {
                if (!claim(k, gen)) continue;
                try {
                    runChunk(k);
                } catch (RuntimeException | Error e) {
                    own = e;
                } finally {
                    pending.decrementAndGet();
                }
            }
            // A chunk left unclaimed after a failure is claimed here, unrun, so that no late worker runs it.
            for (int k = 1; k < threads; k++) {
                if (claim(k, gen)) pending.decrementAndGet();
            }
            int spins = 0;
            while (pending.get() != 0) {
                if (++spins < SPINS) Thread.onSpinWait();
                else LockSupport.parkNanos(50_000);
            }
            this.task = null;
            this.caller = null;
            RuntimeException f = failure;
            failure = null;
            if (own instanceof Error err) throw err;
            if (own instanceof RuntimeException re) {
                if (f != null && f != re) re.addSuppressed(f);
                throw re;
            }
            if (f != null) throw f;
        }
    }

    public void parallelFor(int n, RangeTask task) {
        parallelFor(n, 1, task);
    }

    /**
     * Runs {@code task} over [0, n) in ranges of {@code chunk} items that the threads claim one after another until none
     * is left, instead of one fixed range per thread: a thread that the machine slows down (another process, the
     * other hyperthread) leaves its unstarted ranges to the others rather than holding up the barrier. The task may be
     * called several times per thread (with that thread's index); the ranges start at multiples of chunk.
     */
    public void parallelForClaimed(int n, int chunk, RangeTask task) {
        if (n <= 0) return;
        if (chunk < 1) throw new IllegalArgumentException("chunk must be >= 1, got " + chunk);
        Thread me = Thread.currentThread();
        if (threads == 1 || n <= chunk || nested(me)) {
            task.run(0, n, 0);
            return;
        }
        synchronized (this) {
            claimedRanges.set(task, n, chunk);
            try {
                parallelFor(threads, 1, claimedRanges);
            } finally {
                claimedRanges.task = null;
            }
        }
    }

    private final Claimed claimedRanges = new Claimed();

    /** The ranges of one {@link #parallelForClaimed} call, claimed from a shared counter. */
    private static final class Claimed implements RangeTask {
        private final AtomicInteger next = new AtomicInteger();
        private RangeTask task;
        private int n, chunk;

        void set(RangeTask task, int n, int chunk) {
            this.task = task;
            this.n = n;
            this.chunk = chunk;
            next.set(0);
        }

        @Override
        public void run(int unit, int unitEnd, int thread) {
            for (int s; (s = next.getAndAdd(chunk)) < n; ) task.run(s, Math.min(n, s + chunk), thread);
        }
    }

    /** A call from inside a running job (a worker, or the caller in its own chunk): it runs inline, on that thread. */
    private boolean nested(Thread me) {
        return me instanceof PoolThread || (this.task != null && caller == me);
    }

    /** True for the one thread that takes chunk t of job gen (its worker, or the caller). */
    private boolean claim(int t, long gen) {
        long c = claimed.get(t);
        return c < gen && claimed.compareAndSet(t, c, gen);
    }

    private void runChunk(int t) {
        int units = (n + granule - 1) / granule;
        int per = units / threads, extra = units % threads;
        int startUnit = t * per + Math.min(t, extra);
        int endUnit = startUnit + per + (t < extra ? 1 : 0);
        int start = Math.min(n, startUnit * granule), end = Math.min(n, endUnit * granule);
        if (start < end) task.run(start, end, t);
    }

    /** A worker's thread: a kernel called from inside a pool task runs inline instead of deadlocking. */
    private static final class PoolThread extends Thread {
        PoolThread(Runnable r, String name) {
            super(r, name);
            setDaemon(true);
        }
    }

    private final class Worker implements Runnable {
        final int index;
        Thread thread;
        long seen;

        Worker(int index) {
            this.index = index;
        }

        @Override
        public void run() {
            while (true) {
                int spins = 0;
                while (generation == seen) {
                    if (++spins < SPINS) Thread.onSpinWait();
                    else LockSupport.park(this);
                }
                long gen = generation;
                seen = gen;
                if (!claim(index, gen)) continue; // the caller ran this chunk already
                try {
                    runChunk(index);
                } catch (RuntimeException | Error e) {
                    failure = e instanceof RuntimeException re ? re : new RuntimeException(e);
                } finally {
                    if (pending.decrementAndGet() == 0) LockSupport.unpark(caller);
                }
            }
        }
    }

    /** Physical cores: distinct core ids in sysfs when readable, else the JVM's processor count. */
    static int defaultThreads() {
        String prop = System.getProperty("sparseserve.threads");
        if (prop != null) return Integer.parseInt(prop);
        int logical = Runtime.getRuntime().availableProcessors();
        try {
            Set<String> cores = new HashSet<>();
            for (int cpu = 0; cpu < logical; cpu++) {
                Path topo = Path.of("/sys/devices/system/cpu/cpu" + cpu + "/topology");
                String pkg = Files.readString(topo.resolve("physical_package_id")).trim();
                String core = Files.readString(topo.resolve("core_id")).trim();
                cores.add(pkg + ":" + core);
            }
            return Math.max(1, Math.min(logical, cores.size()));
        } catch (Exception e) {
            return logical;
        }
    }
}
