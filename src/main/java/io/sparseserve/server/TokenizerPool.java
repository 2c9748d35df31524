package io.sparseserve.server;

import io.vertx.core.Context;
import io.vertx.core.Future;
import io.vertx.core.Promise;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.SynchronousQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Tokenizes prompts off the Vert.x event loops: a few hundred KB of text take about half a second, and an event loop
 * that tokenizes serves none of its other connections meanwhile. A fixed number of threads and a bounded queue:
 * when both are full the work is refused at once ({@link FullException}: RESOURCE_EXHAUSTED / 429) instead of
 * piling up. Results come back on the caller's context, in order with its other events.
 */
final class TokenizerPool implements AutoCloseable {
    /** Texts up to this many bytes tokenize in microseconds: on the caller's thread, no hand-off. */
    static final int INLINE_BYTES = 1024;

    /** Every tokenizer thread is busy and the queue is full. */
    static final class FullException extends RuntimeException {
        FullException(String message) {
            super(message);
        }
    }

    private final ThreadPoolExecutor pool;
    private final int threads;
    private final int queue;

    TokenizerPool(int threads, int queue) {
        this.threads = threads;
        this.queue = queue;
        AtomicInteger n = new AtomicInteger();
        BlockingQueue<Runnable> q = queue == 0 ? new SynchronousQueue<>() : new ArrayBlockingQueue<>(queue);
        this.pool = new ThreadPoolExecutor(threads, threads, 0, TimeUnit.SECONDS, q, r -> {
            Thread t = new Thread(r, "sparse-serve-tokenizer-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
    }

    /** Runs {@code work} on the pool; its result or failure completes the future on {@code context}. */
    <T> Future<T> submit(Context context, Callable<T> work) {
        Promise<T> promise = Promise.promise();
        try {
            pool.execute(() -> {
                T result;
                try {
                    result = work.call();
                } catch (Throwable e) {
                    context.runOnContext(v -> promise.fail(e));
                    return;
                }
                context.runOnContext(v -> promise.complete(result));
            });
        } catch (RejectedExecutionException e) {
            promise.fail(new FullException("the tokenizer is busy: " + threads + " threads working and " + queue
                    + " prompts queued (--tokenizer-threads, --tokenizer-queue); retry later"));
        }
        return promise.future();
    }

    /** Inline for short texts, on the pool for long ones. */
    <T> Future<T> run(Context context, int textBytes, Callable<T> work) {
        if (textBytes > INLINE_BYTES) return submit(context, work);
        try {
            return Future.succeededFuture(work.call());
        } catch (Exception e) {
            return Future.failedFuture(e);
        }
    }

    @Override
    public void close() {
        pool.shutdownNow();
    }
}
