package io.sparseserve.server;

import io.sparseserve.engine.Engine;
import io.sparseserve.engine.TokenSink;
import io.vertx.core.Context;
import io.vertx.core.Vertx;
import java.time.Duration;

/**
 * Hands one sequence's engine events over to the Vert.x context of its call, in order (a context runs its tasks in
 * submission order), so that responses are only ever written on their own event loop. Once the call is over
 * ({@link #close}: the client went away, the deadline passed, or the answer is complete) later events are dropped.
 */
final class ContextSink implements TokenSink {

    /** What the call does with the events, on its context. */
    interface Target {
        void delta(Delta delta);

        void finish(Delta last, Finished finished);

        void error(Throwable error);
    }

    private final Context context;
    private final Target target;
    private Engine.Handle handle; // set on the context right after submit, before any event can be run there
    private boolean closed; // confined to the context
    private final java.util.ArrayList<Runnable> onClose = new java.util.ArrayList<>(2);
    private Vertx vertx;
    private long stallTimer = -1;

    ContextSink(Context context, Target target) {
        this.context = context;
        this.target = target;
    }

    void attach(Engine.Handle handle) {
        this.handle = handle;
    }

    Engine.Handle handle() {
        return handle;
    }

    boolean closed() {
        return closed;
    }

    /** Runs {@code action} on the context when the call is over (e.g. to cancel its deadline timer). */
    void onClose(Runnable action) {
        onClose.add(action);
    }

    private void markClosed() {
        closed = true;
        if (stallTimer >= 0) {
            vertx.cancelTimer(stallTimer);
            stallTimer = -1;
        }
        for (Runnable r : onClose) r.run();
    }

    /**
     * The client stopped reading (the response's write queue is full): pause the sequence, so it stops computing and
     * the engine may take its slot and KV blocks back, and give up on the call ({@code onIdle}) unless the client
     * reads again within {@code idle} (--stream-idle-timeout).
     */
    void readerStalled(Vertx vertx, Duration idle, Runnable onIdle) {
        if (closed || handle == null) return;
        handle.pause();
        if (stallTimer >= 0) return;
        this.vertx = vertx;
        stallTimer = vertx.setTimer(Math.max(1, idle.toMillis()), id -> {
            stallTimer = -1;
            if (!closed) onIdle.run();
        });
    }

    /** The client reads again (the write queue drained): the sequence resumes. */
    void readerBack() {
        if (stallTimer >= 0) {
            vertx.cancelTimer(stallTimer);
            stallTimer = -1;
        }
        if (!closed && handle != null) handle.resume();
    }

    /** Ends the call's interest in the sequence: no more events, and the engine drops it before its next step. */
    void cancel() {
        if (closed) return;
        markClosed();
        if (handle != null) handle.cancel();
    }

    /** Marks the call complete (the sequence already ended). */
    void close() {
        if (!closed) markClosed();
    }

    @Override
    public void onDelta(Delta delta) {
        context.runOnContext(v -> {
            if (!closed) target.delta(delta);
        });
    }

    @Override
    public void onFinish(Delta last, Finished finished) {
        context.runOnContext(v -> {
            if (closed) return;
            markClosed();
            target.finish(last, finished);
        });
    }

    @Override
    public void onError(Throwable error) {
        context.runOnContext(v -> {
            if (closed) return;
            markClosed();
            target.error(error);
        });
    }
}
