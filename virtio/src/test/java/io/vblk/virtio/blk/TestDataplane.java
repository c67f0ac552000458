package io.vblk.virtio.blk;

import java.util.function.IntFunction;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.AioWait;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.virtio.VirtioPciTransport;

/**
 * A minimal dataplane for the device tests (the real one lives in the
 * dataplane module, which depends on this one): at DRIVER_OK it assigns the
 * guest notifiers, switches every queue's kicks to an ioeventfd, moves the
 * backend to {@code backendCtx}, binds queue q to {@code queueCtx(q)} with
 * irqfd interrupts and attaches its host notifier there; at reset it undoes
 * all of that in the reverse order, draining the backend and flushing the
 * batched notifications. Queue and backend contexts may differ, so requests
 * and completions cross contexts through the device's hand-off queues.
 * Drained sections detach and re-attach the handlers. Main loop only.
 */
final class TestDataplane implements IoeventfdOps {
    private final VirtioBlk dev;
    private final VirtioPciTransport t;
    private final BlockBackend blk;
    private final MainLoop loop;
    private final IntFunction<AioContext> queueCtx;
    private final AioContext backendCtx;
    private volatile boolean started;
    private volatile boolean attached;
    volatile int starts;
    volatile int stops;

    TestDataplane(VirtioBlk dev, VirtioPciTransport t, MainLoop loop, IntFunction<AioContext> queueCtx,
            AioContext backendCtx) {
        this.dev = dev;
        this.t = t;
        this.blk = dev.backend();
        this.loop = loop;
        this.queueCtx = queueCtx;
        this.backendCtx = backendCtx;
    }

    boolean isStarted() {
        return started;
    }

    @Override
    public void startIoeventfd() {
        checkMain();
        if (started) {
            return;
        }
        t.setGuestNotifiers(true);
        for (int q = 0; q < dev.numQueues(); q++) {
            t.setHostNotifierEnabled(q, true);
        }
        blk.setAioContext(backendCtx);
        AioWait.pollWhile(loop.context(), dev::busy); // as the real dataplane: rebind only idle queues
        for (int q = 0; q < dev.numQueues(); q++) {
            dev.setQueueContext(q, queueCtx.apply(q), true);
        }
        started = true;
        starts++;
        if (!blk.isQuiesced()) {
            attachAll();
        }
    }

    private void attachAll() {
        for (int q = 0; q < dev.numQueues(); q++) {
            AioContext c = queueCtx.apply(q);
            try (AioContextLock.Held h = c.inHomeThread() ? null : c.acquire()) {
                dev.attachHostNotifier(q, c);
                dev.queue(q).hostNotifier().testAndClear();
                dev.queueNotify(q);
            }
        }
        attached = true;
    }

    @Override
    public void stopIoeventfd() {
        checkMain();
        if (!started) {
            return;
        }
        int n = dev.numQueues();
        for (int q = 0; q < n; q++) {
            int queue = q;
            AioWait.runInHome(queueCtx.apply(q), "test-dataplane-detach", () -> dev.detachHostNotifier(queue));
        }
        attached = false;
        for (int q = 0; q < n; q++) {
            t.setHostNotifierEnabled(q, false);
        }
        started = false;
        AioContext bc = blk.context();
        try (AioContextLock.Held h = bc.inHomeThread() ? null : bc.acquire()) {
            blk.drain();
            AioWait.pollWhile(bc, dev::busy);
        }
        for (int q = 0; q < n; q++) {
            AioContext c = queueCtx.apply(q);
            try (AioContextLock.Held h = c.inHomeThread() ? null : c.acquire()) {
                dev.flushNotification(q);
            }
        }
        for (int q = 0; q < n; q++) {
            dev.setQueueContext(q, loop.context(), false);
        }
        blk.setAioContext(loop.context());
        t.setGuestNotifiers(false);
        stops++;
    }

    @Override
    public void drainedBegin() {
        if (!started || !attached) {
            return;
        }
        for (int q = 0; q < dev.numQueues(); q++) {
            dev.detachHostNotifier(q);
        }
        attached = false;
    }

    @Override
    public boolean drainedEnd() {
        if (!started) {
            return false;
        }
        if (!attached) {
            attachAll();
        }
        return true;
    }

    private void checkMain() {
        if (!loop.context().inHomeThread()) {
            throw new IllegalStateException("test dataplane outside the main loop");
        }
    }
}
