package io.vblk.virtio.blk;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.function.Consumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Requests handed from one context to another (a queue served by one
 * IOThread, a backend living in another): pushed lock-free from any thread,
 * taken as a batch by one BH in the target context and processed in FIFO
 * order. Allocation-free: requests link themselves. A request whose
 * processing throws is logged and the batch goes on: the ones behind it must
 * not be lost, or a drain waiting for them would wait forever.
 *
 * <p>This is the device's own cross-context request hand-off (a request to
 * the backend's context, its completion back to the queue's), which QEMU also
 * keeps inside virtio-blk and the block layer rather than in
 * dataplane/virtio-blk.c: it is part of executing a request, not of starting
 * or stopping queues, so it stays in virtio.
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
    private static final Logger LOG = LoggerFactory.getLogger(HandoffQueue.class);

    /** The context whose BH processes the requests. */
    final AioContext ctx;
    private final BottomHalf bh;
    private final Consumer<VirtioBlkReq> target;
    private final String name;

    HandoffQueue(AioContext ctx, String name, Consumer<VirtioBlkReq> target) {
        this.ctx = ctx;
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
        if (h == null) {
            bh.schedule(); // a non-empty list has its drain scheduled already, and the drain takes it whole
        }
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
            try {
                target.accept(r);
            } catch (RuntimeException e) {
                LOG.error("hand-off '{}': processing vq{} request type {} failed", name, r.queue.index, r.type, e);
            }
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
