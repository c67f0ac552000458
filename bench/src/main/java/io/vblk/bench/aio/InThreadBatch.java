package io.vblk.bench.aio;

import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;


/**
 * Runs a benchmark's measurement loop inside the home thread of an
 * {@link IOThread}'s {@link AioContext}, so that operations which are only
 * legal there (a poll of the context by its own thread) are measured on one
 * thread without a cross-thread hand-off per operation.
 *
 * <p>One {@link #run()} runs the body once through an {@link InContextRunner},
 * and the body performs {@link #OPS} operations: the hand-off (one eventfd
 * wake-up and one unpark, tens of microseconds on a VM) is amortised to under
 * 1 ns per operation, and every poll the body makes takes the context lock
 * afresh, as one iteration of the real event loop does.
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
    private final InContextRunner runner;

    /** Starts a main loop and an IOThread named {@code name}; {@code body} runs once per batch in it. */
    InThreadBatch(String name, Runnable body) {
        this.loop = new MainLoop();
        this.ctx = loop.newIOThread(name, 0).context();
        this.body = body;
        this.runner = new InContextRunner(ctx, name + "-batch");
    }

    AioContext context() {
        return ctx;
    }

    /** Runs one batch of {@link #OPS} operations in the IOThread and waits for it. */
    void run() {
        runner.run(body);
    }

    @Override
    public void close() {
        loop.close();
    }
}
