package io.vblk.block.qcow2;

import io.vblk.aio.AioContext;

import java.util.ArrayDeque;
import java.util.function.Supplier;

/**
 * The lock serialising every metadata change of one image: QEMU's
 * {@code s->lock}, a {@code CoMutex}, for callbacks instead of coroutines.
 *
 * <p>{@link #acquire} grants a free lock at once (the waiter runs inside the
 * call) and otherwise queues the waiter FIFO. {@link #release} hands the lock
 * straight to the next waiter but runs it from a one-shot bottom half of the
 * node's home context, as {@code qemu_co_mutex_unlock} wakes the next
 * coroutine with {@code aio_co_wake}: the releasing callback never runs the
 * next holder on its own stack, so chains of holders cannot grow the stack,
 * and a holder that completes inside a nested {@code AioWait.pollWhile}
 * (a synchronous wrapper) still lets the waiter run.
 *
 * <p>The lock is held across the metadata I/O of a step (loading an L2 table,
 * writing back caches) but never across guest data I/O. Home context only.
 */
final class MetadataLock {
    /** Something that waits for the lock; {@link #lockAcquired()} runs in the home context. */
    interface Waiter {
        void lockAcquired();
    }

    private final Supplier<AioContext> home;
    private final ArrayDeque<Waiter> queue = new ArrayDeque<>();
    private boolean held;
    private long handoffs;

    MetadataLock(Supplier<AioContext> home) {
        this.home = home;
    }

    void acquire(Waiter w) {
        if (!held) {
            held = true;
            w.lockAcquired();
        } else {
            queue.addLast(w);
        }
    }

    /** Releases the lock, passing it to the first waiter (which keeps it held meanwhile). */
    void release() {
        if (!held) {
            throw new IllegalStateException("qcow2 metadata lock released but not held");
        }
        Waiter next = queue.pollFirst();
        if (next == null) {
            held = false;
            return;
        }
        handoffs++;
        home.get().bhScheduleOneshot("qcow2-metadata-lock", next::lockAcquired);
    }

    boolean isHeld() {
        return held;
    }

    int waiters() {
        return queue.size();
    }

    long handoffs() {
        return handoffs;
    }
}
