package io.vblk.vhost;

import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * Test seam (a step seam, like {@code LoopHold} and the scenarios'
 * {@link RequestObserver}s): holds the thread serving a queue right after it
 * took the {@code n}-th write request of the process from the avail ring —
 * the chain popped, its head marked in flight in the inflight region
 * ({@code vu_queue_inflight_get}) — and before the request reaches the
 * backend, so it stays in flight until {@link #release()}. It turns "a
 * back-end crash finds a request taken and not completed", which a real
 * guest hits by chance, into a step a test waits for: the hold announces
 * itself with one line, the test kills the back-end there, and the next
 * back-end must resubmit the request ({@code vu_check_queue_inflights}).
 *
 * <p>Armed in {@code vblk serve} only by the hidden test switch
 * {@code --x-hold-after-take N}. Unarmed, nothing of it exists: the device's
 * observer stays {@link RequestObserver#NONE}, the no-op it always calls.
 * While held, the queue's IOThread (and every queue and backend it serves)
 * does nothing else; the vhost-user connection stays served by the main
 * loop.
 */
public final class TakenRequestHold implements RequestObserver {
    private final long nth;
    private final Consumer<String> announce;
    private final AtomicLong writes = new AtomicLong();
    private final CountDownLatch released = new CountDownLatch(1);

    /**
     * @param nth      which write request to hold, counting from 1 since the process started
     * @param announce where the line saying the request is held goes (the command's output)
     */
    public TakenRequestHold(long nth, Consumer<String> announce) {
        if (nth < 1) {
            throw new IllegalArgumentException("the write request to hold is counted from 1, got " + nth);
        }
        this.nth = nth;
        this.announce = announce;
    }

    /** The n-th write: announced, then the queue's thread waits until {@link #release()}. */
    @Override
    public void submitted(int queue, int type, long sector) {
        if (type != VirtioBlkAbi.T_OUT || writes.incrementAndGet() != nth) {
            return;
        }
        announce.accept(String.format("holding write request %d (queue %d, sector %d) in flight: taken from the "
                + "avail ring and marked in the inflight region, not completed (test switch --x-hold-after-take)",
                nth, queue, sector));
        boolean interrupted = false;
        for (;;) {
            try {
                released.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    /** Lets the held request go on to the backend (the server does this as it shuts down). */
    public void release() {
        released.countDown();
    }
}
