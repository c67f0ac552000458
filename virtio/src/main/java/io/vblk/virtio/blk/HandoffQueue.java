package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.function.Consumer;

/**
 * Requests handed from one context to another (a queue served by one
 * IOThread, a backend living in another): pushed lock-free from any thread,
 * taken as a batch by one BH in the target context and processed in FIFO
 * order. Allocation-free: requests link themselves.
 */
final class HandoffQueue {
    private static final VarHandle HEAD;

    static {
        try {
            HEAD = MethodHandles.lookup().findVarHandle(HandoffQueue.class, "head", VirtioBlkReq.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    @SuppressWarnings("unused") // accessed through HEAD
    private volatile VirtioBlkReq head;
    private final BottomHalf bh;
    private final Consumer<VirtioBlkReq> target;
    private final String name;

    HandoffQueue(AioContext ctx, String name, Consumer<VirtioBlkReq> target) {
        this.target = target;
        this.name = name;
        this.bh = ctx.bhNew(name, this::drain);
    }

    void push(VirtioBlkReq r) {
        VirtioBlkReq h;
        do {
            h = (VirtioBlkReq) HEAD.getVolatile(this);
            r.next = h;
        } while (!HEAD.compareAndSet(this, h, r));
        bh.schedule();
    }

    private void drain() {
        VirtioBlkReq list = (VirtioBlkReq) HEAD.getAndSet(this, null);
        VirtioBlkReq fifo = null;
        while (list != null) {
            VirtioBlkReq n = list.next;
            list.next = fifo;
            fifo = list;
            list = n;
        }
        while (fifo != null) {
            VirtioBlkReq r = fifo;
            fifo = r.next;
            r.next = null;
            target.accept(r);
        }
    }

    /** Retires the queue; requests still in it would be lost, so that is a bug the caller must not have. */
    void delete() {
        VirtioBlkReq r = (VirtioBlkReq) HEAD.getVolatile(this);
        if (r != null) {
            int n = 0;
            for (VirtioBlkReq x = r; x != null; x = x.next) {
                n++;
            }
            throw new IllegalStateException("hand-off queue '" + name + "' deleted with " + n
                    + " request(s) in it (first: vq" + r.queue.index + " type " + r.type + " epoch " + r.epoch + ")");
        }
        bh.delete();
    }
}
