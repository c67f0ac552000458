package io.vblk.testkit;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

import io.vblk.aio.AioHandler;
import io.vblk.aio.EventNotifier;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.virtio.InterruptSink;

/**
 * The machine's interrupt controller for device tests, KVM's irqchip
 * in miniature: MSI messages injected by the transport (userspace delivery,
 * from the device's home context) and irqfds wired while assigned (served by
 * an "irqchip" IOThread, as KVM serves them in the kernel) both end as a
 * release of the vector's semaphore, which a guest thread blocks on. A
 * released irqfd is unwired: a signal on it after release is lost, as on a
 * real host. INTx assertions go to their own semaphore. Every wait is bounded
 * and turns expiry into the watchdog's hang report.
 */
public final class Irqchip implements InterruptSink, AutoCloseable {
    private final MainLoop loop;
    private final IOThread chip;
    private final Semaphore[] vectors;
    private final AtomicLongArray counts;
    private final AtomicLong intxCount = new AtomicLong();
    private final Semaphore any = new Semaphore(0);
    private final Map<Integer, AioHandler> wired = new ConcurrentHashMap<>();
    /** Deliveries that should not have happened (checked by the machine's close). */
    public final List<String> errors = new CopyOnWriteArrayList<>();

    public Irqchip(MainLoop loop, int vectors) {
        this.loop = loop;
        this.chip = loop.newIOThread("irqchip", 0);
        this.vectors = new Semaphore[vectors];
        this.counts = new AtomicLongArray(vectors);
        for (int v = 0; v < vectors; v++) {
            this.vectors[v] = new Semaphore(0);
        }
    }

    private void fire(int vector) {
        counts.incrementAndGet(vector);
        vectors[vector].release();
        any.release();
    }

    @Override
    public void msi(int vector, long address, int data) {
        if (data != 0x40 + vector || address != 0xfee0_0000L) {
            errors.add("MSI for vector " + vector + " with a message the guest did not program: 0x"
                    + Long.toHexString(address) + "/0x" + Integer.toHexString(data));
        }
        fire(vector);
    }

    @Override
    public void intx(boolean asserted) {
        if (asserted) {
            intxCount.incrementAndGet();
            any.release();
        }
    }

    @Override
    public void guestNotifierAssigned(int vector, EventNotifier irqfd, long address, int data) {
        AioHandler h = chip.context().setFdHandler(new AioHandler.Builder("irqfd-v" + vector, irqfd.fd())
                .onRead(() -> {
                    if (irqfd.testAndClear()) {
                        fire(vector);
                    }
                }));
        AioHandler old = wired.put(vector, h);
        if (old != null) {
            old.remove();
        }
    }

    @Override
    public void guestNotifierReleased(int vector, EventNotifier irqfd) {
        AioHandler h = wired.remove(vector);
        if (h != null) {
            h.remove();
        }
    }

    /** How many interrupts vector {@code v} delivered so far. */
    public long count(int v) {
        return counts.get(v);
    }

    public long intxCount() {
        return intxCount.get();
    }

    /** Waits for an interrupt on {@code v}; a missing interrupt within {@code deadline} is a hang with a dump. */
    public void await(int v, Duration deadline, String what) {
        acquire(vectors[v], deadline, what);
    }

    /** Waits for any interrupt (a queue vector, the config vector or INTx). */
    public void awaitAny(Duration deadline, String what) {
        acquire(any, deadline, what);
    }

    private void acquire(Semaphore s, Duration deadline, String what) {
        try {
            if (!s.tryAcquire(deadline.toNanos(), TimeUnit.NANOSECONDS)) {
                throw loop.watchdog(deadline).hang(what);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted waiting for " + what, e);
        }
    }

    @Override
    public void close() {
        for (AioHandler h : wired.values()) {
            h.remove();
        }
        wired.clear();
        chip.close();
    }
}
