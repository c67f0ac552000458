package io.vblk.bench.aio;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;

import java.util.concurrent.locks.LockSupport;

/**
 * Runs a benchmark's measurement loop inside the home thread of an
 * {@link IOThread}'s {@link AioContext}, so that operations which are only
 * legal there (a poll of the context by its own thread) are measured on one
 * thread without a cross-thread hand-off per operation.
 *
 * <p>One {@link #run()} schedules a BH made once (the "runner") into the
 * IOThread and parks until it has finished; the runner calls the body,
 * which performs {@link #OPS} operations. The hand-off (one eventfd wake-up
 * and one unpark, tens of microseconds on a VM) is thus amortised over
 * {@code OPS} operations: under 1 ns per operation. The caller parks rather
 * than spins meanwhile, leaving the IOThread's core (or hyperthread sibling)
 * alone. Nothing is allocated per batch.
 *
 * <p>The runner is itself dispatched by the IOThread's {@code poll(true)},
 * which holds the context lock. The runner releases that hold for the
 * duration of the body (as {@code AioWait.pollWhile} does), so every
 * {@code poll(false)} the body makes takes the lock afresh, as one iteration
 * of the real event loop does, rather than as a cheaper recursive
 * acquisition. Nothing else polls the context meanwhile.
 *
 * <p>The IOThread is made with {@code poll-max-ns} 0: it sleeps between
 * batches instead of busy-polling a core the caller needs.
 */
final class InThreadBatch implements AutoCloseable {
    /** Operations per batch; a compile-time constant for {@code @OperationsPerInvocation}. */
    static final int OPS = 100_000;

    private final MainLoop loop;
    private final AioContext ctx;
    private final Runnable body;
    private final BottomHalf runner;
    private Thread caller;       // published to the runner by runner.schedule()
    private long started;        // caller only
    private volatile long finished;
    private volatile Throwable failure;

    /** Starts a main loop and an IOThread named {@code name}; {@code body} runs once per batch in it. */
    InThreadBatch(String name, Runnable body) {
        this.loop = new MainLoop();
        this.ctx = loop.newIOThread(name, 0).context();
        this.body = body;
        this.runner = ctx.bhNew(name + "-batch", this::runBatch);
    }

    AioContext context() {
        return ctx;
    }

    /** Runs one batch of {@link #OPS} operations in the IOThread and waits for it. */
    void run() {
        long target = ++started;
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

    private void runBatch() {
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

    @Override
    public void close() {
        loop.close();
    }
}
