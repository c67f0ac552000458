package io.vblk.aio;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The home thread of one {@link AioContext}: loops {@code poll(true)} until
 * stopped. Shared by {@link IOThread} and {@link MainLoop}; QEMU's
 * {@code iothread_run} and the main loop's {@code main_loop_wait}.
 */
final class EventLoopThread extends Thread {
    private static final Logger LOG = LoggerFactory.getLogger(EventLoopThread.class);

    private final AioContext ctx;
    private volatile boolean running = true;

    EventLoopThread(AioContext ctx) {
        super(ctx.name());
        this.ctx = ctx;
        setDaemon(true);
        ctx.setHomeThread(this);
    }

    AioContext context() {
        return ctx;
    }

    @Override
    public void run() {
        try {
            while (running) {
                ctx.poll(true);
            }
        } catch (ClosedContextException e) {
            LOG.debug("{}: context closed, loop ends", getName());
        } catch (Throwable t) {
            LOG.error("{}: event loop died", getName(), t);
            ctx.mainLoop().recordFailure(getName(), "event loop", t);
        }
    }

    /** Ends the loop after its current iteration: QEMU's {@code iothread_stop} BH. */
    void requestStop() {
        ctx.bhScheduleOneshot("stop-loop", () -> running = false);
    }

    /**
     * The stop before bug 005's fix (2362a28ea1): a flag and an
     * {@code aio_notify}. A BH is one of the things a poll reads after
     * announcing itself in notify_me; the bare flag is not, so a thread
     * between its flag check and its announcement may sleep on.
     */
    void requestStopByFlag() {
        running = false;
        ctx.aioNotify();
    }
}
