package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;
import io.vblk.virtio.VirtQueue;

import java.util.ArrayDeque;

/**
 * The device's side of one virtqueue: the context that serves it, its pool
 * of request objects, and the batched guest notification (QEMU's
 * {@code notify_guest_bh}): completions of one loop iteration raise one
 * interrupt at the end of the batch. Touched only in the queue's context.
 *
 * <p>Why this stays in the device rather than the dataplane module: the
 * batched notification exists without any dataplane too (queues served by
 * the main loop batch the same way), completions are pushed by the device in
 * whichever context serves the queue, and the binding is the device's own
 * per-queue state that a dataplane only switches ({@link VirtioBlk#setQueueContext},
 * while the queue is idle; the wait for idle lives in the dataplanes, seed
 * 001). The dataplane module decides which IOThread serves which queue and
 * when; this class is what the device keeps per queue whoever serves it.
 */
final class QueueState {
    final VirtioBlk dev;
    final VirtQueue vq;
    final int index;
    private final ArrayDeque<VirtioBlkReq> pool = new ArrayDeque<>();
    volatile AioContext ctx;
    private BottomHalf notifyBh;
    HandoffQueue completions;
    boolean notifyPending;
    private boolean irqfd;

    QueueState(VirtioBlk dev, VirtQueue vq, AioContext ctx) {
        this.dev = dev;
        this.vq = vq;
        this.index = vq.index();
        bind(ctx, false);
    }

    /**
     * Moves the queue's per-context resources to {@code c} (the queue is
     * detached and idle). The notification BH is bound with its delivery path:
     * the dataplane's signals the irqfd, as QEMU's {@code notify_guest_bh}
     * does. An old BH still pending is not deleted: if nobody flushed it, it
     * runs late in its old context — seed 001's lost notification.
     */
    void bind(AioContext c, boolean irqfd) {
        if (completions != null) {
            completions.delete();
        }
        ctx = c;
        boolean viaIrqfd = irqfd;
        notifyBh = c.bhNew(dev.name() + "-vq" + index + "-notify", () -> notifyGuest(viaIrqfd));
        this.irqfd = irqfd;
        completions = new HandoffQueue(c, dev.name() + "-vq" + index + "-complete", dev::finishHandedOff);
    }

    VirtioBlkReq take() {
        VirtioBlkReq r = pool.pollFirst();
        return r != null ? r : new VirtioBlkReq(dev, this);
    }

    void give(VirtioBlkReq r) {
        r.elem.clear();
        r.qiov.reset();
        r.error = null;
        pool.addFirst(r);
    }

    /** A completion was pushed: interrupt the guest once, at the end of this batch. */
    void scheduleNotify() {
        notifyPending = true;
        notifyBh.schedule();
    }

    /** The batched notification, through the path its BH was bound with. */
    private void notifyGuest(boolean viaIrqfd) {
        if (!notifyPending) {
            return;
        }
        notifyPending = false;
        dev.signalGuest(vq, viaIrqfd);
    }

    /** Cancels the scheduled notification BH and runs the notification now (the dataplane's stop, seed 001). */
    void flushNotify() {
        notifyBh.cancel();
        notifyGuest(irqfd);
    }
}
