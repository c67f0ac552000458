package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A deferred callback run by its {@link AioContext}'s home thread: QEMU's
 * {@code QEMUBH}. {@link #schedule()} may be called from any thread; it is
 * idempotent while the BH is pending and costs no allocation, so a BH made
 * once can be scheduled per request. Flags clear before the callback runs,
 * so the callback may reschedule its own BH (which then runs in a later
 * poll, never in the same batch).
 */
public final class BottomHalf {
    static final int PENDING = 1;
    static final int SCHEDULED = 2;
    static final int DELETED = 4;
    static final int ONESHOT = 8;

    private static final VarHandle FLAGS;

    static {
        try {
            FLAGS = MethodHandles.lookup().findVarHandle(BottomHalf.class, "flags", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final AioContext ctx;
    private final Runnable callback;
    private final String name;
    @SuppressWarnings("unused") // accessed through FLAGS
    private volatile int flags;
    /** Link in the context's {@link BhList}; written only by the pushing thread before publication. */
    BottomHalf next;

    BottomHalf(AioContext ctx, String name, Runnable callback, int initialFlags) {
        this.ctx = ctx;
        this.name = name;
        this.callback = callback;
        this.flags = initialFlags;
    }

    public AioContext context() {
        return ctx;
    }

    public String name() {
        return name;
    }

    /** QEMU's {@code qemu_bh_schedule}: queue the BH (once: {@link BhList#enqueue} says why) and wake the context. */
    public void schedule() {
        int old = (int) FLAGS.getAndBitwiseOr(this, PENDING | SCHEDULED);
        if ((old & DELETED) != 0) {
            throw new IllegalStateException("bottom half " + name + " was deleted");
        }
        if ((old & PENDING) == 0) {
            ctx.bhs.enqueue(this);
        }
        ctx.notifier.aioNotify();
    }

    /** QEMU's {@code qemu_bh_cancel}: a pending BH stays queued but will not run. */
    public void cancel() {
        FLAGS.getAndBitwiseAnd(this, ~SCHEDULED);
    }

    /** QEMU's {@code qemu_bh_delete}: the BH never runs again and may not be rescheduled. */
    public void delete() {
        FLAGS.getAndBitwiseOr(this, DELETED);
    }

    public boolean isScheduled() {
        return ((int) FLAGS.getVolatile(this) & SCHEDULED) != 0;
    }

    /** Clears the pending flags, returning them as they were: the dequeue step of {@code aio_bh_poll}. */
    int takeFlags() {
        return (int) FLAGS.getAndBitwiseAnd(this, ~(PENDING | SCHEDULED));
    }

    /** Marks a one-shot BH pending and scheduled before its first (and only) enqueue. */
    static BottomHalf oneshot(AioContext ctx, String name, Runnable callback) {
        return new BottomHalf(ctx, name, callback, ONESHOT | PENDING | SCHEDULED);
    }

    void run() {
        callback.run();
    }

    @Override
    public String toString() {
        return name;
    }
}
