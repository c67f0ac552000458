package io.vblk.aio;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A named event-loop thread with its own {@link AioContext}: QEMU's
 * {@code IOThread} object ({@code -object iothread,id=...}). Made by
 * {@link MainLoop#newIOThread}, so it shares the machine's legacy switches,
 * wait registry and thread pool.
 */
public final class IOThread implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(IOThread.class);

    private final String name;
    private final AioContext ctx;
    private final EventLoopThread thread;
    private final MainLoop loop;
    private boolean closed;

    IOThread(MainLoop loop, String name, long pollMaxNs, FdMonOptions fdmon) {
        this.loop = loop;
        this.name = name;
        this.ctx = new AioContext(name, loop, pollMaxNs, fdmon);
        this.thread = new EventLoopThread(ctx);
        thread.start();
    }

    public String name() {
        return name;
    }

    public AioContext context() {
        return ctx;
    }

    public Thread thread() {
        return thread;
    }

    /**
     * Asks the loop to end after its current iteration without waiting for
     * it (QEMU's {@code iothread_stop} without the join); {@link #close()}
     * joins and frees.
     */
    public void requestStop() {
        if (ctx.isClosed()) {
            return;
        }
        if (ctx.legacy().isOn(LegacyBehavior.IOTHREAD_STOP_BY_FLAG_AND_NOTIFY)) {
            thread.requestStopByFlag(); // bug 005's switch: iothread.c's stop only, not the main loop's
        } else {
            thread.requestStop();
        }
    }

    /**
     * Stops the loop and frees the context. If the thread does not end within
     * the bound (it is stuck in a hang a test provoked), the context is closed
     * under it so any poll unwinds; the resources of a thread that still does
     * not end are left alone rather than freed under it.
     */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        loop.forget(this);
        requestStop();
        if (!MainLoop.joinBounded(thread, 10_000)) {
            ctx.markClosed();
            if (!MainLoop.joinBounded(thread, 10_000)) {
                LOG.warn("IOThread '{}' did not stop; leaving it:\n{}", name, ctx.describe());
                return;
            }
        }
        ctx.freeResources();
    }

    @Override
    public String toString() {
        return "IOThread(" + name + ")";
    }
}
