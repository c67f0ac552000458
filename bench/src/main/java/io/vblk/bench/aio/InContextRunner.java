package io.vblk.bench.aio;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.BottomHalf;

import java.util.concurrent.locks.LockSupport;

/**
 * Runs a benchmark body inside the home thread of an event loop and waits
 * for it: the one hand-off the JMH benchmarks pay per invocation, so that a
 * whole batch of operations that are legal only in that thread (polling the
 * context, submitting to nodes it owns) is measured without a cross-thread
 * hand-off per operation.
 *
 * <p>{@link #run} schedules a BH made once (the "runner") and parks until it
 * has finished; the caller parks rather than spins, leaving the loop's CPU
 * alone. Nothing is allocated per run. The runner is dispatched by the loop's
 * {@code poll(true)}, which holds the context lock; it releases that hold
 * while the body runs (as {@code AioWait.pollWhile} does), so every poll the
 * body makes takes the lock afresh, as one iteration of the real event loop
 * does. Nothing else polls the context meanwhile.
 */
public final class InContextRunner {
    private final AioContext ctx;
    private final BottomHalf runner;
    private Runnable body;       // published to the runner by runner.schedule()
    private Thread caller;       // same
    private long started;        // caller only
    private volatile long finished;
    private volatile Throwable failure;

    public InContextRunner(AioContext ctx, String name) {
        this.ctx = ctx;
        this.runner = ctx.bhNew(name, this::runBody);
    }

    /** Runs {@code b} once in the context's home thread and waits for it; its failure is rethrown here. */
    public void run(Runnable b) {
        long target = ++started;
        body = b;
        caller = Thread.currentThread();
        runner.schedule();
        while (finished != target) {
            LockSupport.park(this);
        }
        Throwable t = failure;
        if (t != null) {
            throw new IllegalStateException("benchmark batch failed in " + ctx.name(), t);
        }
    }

    private void runBody() {
        AioContextLock lock = ctx.lock();
        try {
            if (lock.holdCount() != 1) {
                throw new IllegalStateException("runner expects the context lock held once, not " + lock.holdCount());
            }
            lock.release();
            try {
                body.run();
            } finally {
                lock.acquire();
            }
        } catch (Throwable t) {
            failure = t;
        }
        finished = finished + 1; // only this thread writes it
        LockSupport.unpark(caller);
    }
}
