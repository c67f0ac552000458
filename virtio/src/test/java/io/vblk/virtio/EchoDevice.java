package io.vblk.virtio;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;

/**
 * A trivial virtio device for tests: every request's readable bytes are
 * copied into its writable buffers, and the used length is what was copied.
 * It records where its handlers ran, and in "hold" mode keeps popped
 * requests in flight until {@link #completeHeld()} so a reset has something
 * to quiesce. Config space: 8 bytes, a u32 magic at 0 and a writable u32 at 4.
 */
final class EchoDevice extends VirtioDevice {
    static final int MAGIC = 0x5eed_cafe;

    private final byte[] scratch = new byte[64 * 1024];
    private final ArrayDeque<VirtQueueElement> pool = new ArrayDeque<>();
    private final List<VirtQueueElement> held = new ArrayList<>();
    private final List<VirtQueue> heldQueues = new ArrayList<>();
    volatile boolean hold;
    final AtomicInteger handled = new AtomicInteger();
    final AtomicInteger requests = new AtomicInteger();
    final AtomicInteger driverOks = new AtomicInteger();
    final AtomicInteger resets = new AtomicInteger();
    /** Interrupt decisions taken (signalled or suppressed), counted after each; see {@code echo} in the PCI test. */
    final AtomicInteger notifyDecisions = new AtomicInteger();
    final List<String> statusChanges = new CopyOnWriteArrayList<>();
    final List<Thread> statusHookThreads = new CopyOnWriteArrayList<>();
    volatile AioContext lastHandlerContext;
    volatile Thread lastHandlerThread;
    volatile CountDownLatch quiesceStarted = new CountDownLatch(1);
    volatile int inFlightAtResetHook = -1;

    EchoDevice(String name, int deviceId, long features, int queues, int queueSize, AioContext home, GuestMemory mem) {
        super(name, deviceId, features, 8, home, mem);
        for (int i = 0; i < queues; i++) {
            addQueue(queueSize);
        }
        for (int i = 0; i < 64; i++) {
            pool.add(new VirtQueueElement(4));
        }
        setConfigU32(0, MAGIC);
    }

    @Override
    protected void handleQueue(VirtQueue vq) {
        lastHandlerContext = AioContext.current();
        lastHandlerThread = Thread.currentThread();
        handled.incrementAndGet();
        boolean pushed = false;
        do {
            vq.setNotification(false);
            for (;;) {
                VirtQueueElement e = pool.poll();
                if (e == null) {
                    e = new VirtQueueElement(4);
                }
                if (!vq.pop(e)) {
                    pool.add(e);
                    break;
                }
                requests.incrementAndGet();
                if (hold) {
                    held.add(e);
                    heldQueues.add(vq);
                    continue;
                }
                vq.push(e, echo(e));
                pool.add(e);
                pushed = true;
            }
            vq.setNotification(true);
        } while (!vq.isEmpty());
        if (pushed) {
            vq.flush();
            interrupt(vq);
            notifyDecisions.incrementAndGet();
        }
    }

    /** As virtio-blk does: the irqfd from an iothread (the dataplane), the normal path at home. */
    private void interrupt(VirtQueue vq) {
        if (AioContext.current() == homeContext()) {
            notifyGuest(vq);
        } else {
            notifyGuestIrqfd(vq);
        }
    }

    private int echo(VirtQueueElement e) {
        int n = (int) Math.min(Math.min(e.readableBytes(), e.writableBytes()), scratch.length);
        e.copyFromReadable(0, scratch, 0, n);
        e.copyToWritable(0, scratch, 0, n);
        return n;
    }

    /** Completes the held requests (home context). */
    void completeHeld() {
        for (int i = 0; i < held.size(); i++) {
            VirtQueue vq = heldQueues.get(i);
            VirtQueueElement e = held.get(i);
            vq.push(e, echo(e));
            vq.flush();
            interrupt(vq);
            notifyDecisions.incrementAndGet();
            pool.add(e);
        }
        held.clear();
        heldQueues.clear();
    }

    int heldCount() {
        return held.size();
    }

    @Override
    protected void quiesceForReset() {
        inFlightAtResetHook = held.size();
        quiesceStarted.countDown();
        AioWait.pollWhile(homeContext(), () -> !held.isEmpty());
    }

    @Override
    protected void reset() {
        resets.incrementAndGet();
    }

    @Override
    protected void onStatusChange(int oldStatus, int newStatus) {
        statusChanges.add(oldStatus + "->" + newStatus);
        statusHookThreads.add(Thread.currentThread());
    }

    @Override
    protected void onDriverOk() {
        driverOks.incrementAndGet();
    }

    @Override
    protected void onConfigWrite(int offset, int size, long value) {
        if (offset == 4 && size == 4) {
            setConfigU32(4, value);
        }
    }
}
