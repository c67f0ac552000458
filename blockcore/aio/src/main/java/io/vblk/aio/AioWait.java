package io.vblk.aio;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

/**
 * Waiting for a condition by running event loops: QEMU's {@code AIO_WAIT_WHILE}
 * (formerly {@code BDRV_POLL_WHILE}) and {@code aio_wait_kick}. One instance per
 * machine, owned by its {@link MainLoop}.
 *
 * <p>Two cases, as in QEMU. In the context's home thread, poll that context
 * while the condition holds <em>or the last poll made progress</em> (seed 000:
 * a BH scheduled by the last completion still runs before the wait returns).
 * In the main loop waiting on an iothread's context: release that context's
 * lock once, block in the main context until an iothread {@link #kick()}s it,
 * re-acquire, and once the condition is false keep polling the iothread's
 * context without blocking until it makes no progress. Waiting between two
 * IOThreads is refused. A thread that runs no event loop polls nothing: it
 * waits for the kicks ({@link #waitDelegated}, bug 018's fix).
 *
 * <p>Lock depth: the wait releases the caller's hold on the context lock
 * exactly once, as QEMU does. Callers therefore never hold it recursively
 * across a wait (seeds 002 and 003); the watchdog's dump shows holder and
 * depth when one does.
 */
public final class AioWait {
    private final AtomicInteger numWaiters = new AtomicInteger();
    private volatile BottomHalf kickBh;
    private final LegacySwitches switches;
    /**
     * Null on the ordinary path. Under a scenario's store-buffer model,
     * num_waiters lives in {@link #modelledWaiters} and the waiter's count and
     * the kicker's condition update stay in their store buffers until a
     * barrier (bug 007).
     */
    private final VisibilityModel visibility;
    private final VisibilityModel.Field modelledWaiters;
    /** Wakes the threads waiting by delegation ({@link #waitDelegated}); guards {@link #kicks}. */
    private final Object delegatedKick = new Object();
    /** Kicks seen while a delegated waiter waited; guarded by {@link #delegatedKick}. */
    private long kicks;
    /** Threads in {@link #waitDelegated}: written under {@link #delegatedKick}, read by {@link #kick()}. */
    private volatile int delegatedWaiters;

    AioWait(LegacySwitches legacy, VisibilityModel visibility) {
        this.switches = legacy;
        this.visibility = visibility;
        this.modelledWaiters = visibility == null ? null : visibility.field("num_waiters", 0);
    }

    void bind(AioContext main) {
        kickBh = main.bhNew("aio-wait-kick", () -> { });
    }

    /** Wakes the main loop if it waits in {@link #pollWhile}: QEMU's {@code aio_wait_kick}. */
    public void kick() {
        if (visibility != null) {
            kickModelled();
            return;
        }
        // A volatile read: the JVM orders it after a caller's volatile update of the
        // condition (volatiles are sequentially consistent), which is what bug
        // 007's smp_mb() provides in C.
        if (numWaiters.get() > 0) {
            kickBh.schedule();
            wakeDelegated();
        }
    }

    /** The half of {@link #kick()} for waiters that do not poll: they wait on a monitor, not in a context. */
    private void wakeDelegated() {
        if (delegatedWaiters > 0) {
            synchronized (delegatedKick) {
                kicks++;
                delegatedKick.notifyAll();
            }
        }
    }

    /**
     * Bug 007 under the store-buffer model. The fix's {@code smp_mb()}
     * publishes the caller's update of the waited-on condition before
     * num_waiters is read; pre-fix ("the barrier is in the caller", and no
     * caller had one) the update may still sit in this thread's buffer while
     * it reads a num_waiters that does not yet show the waiter.
     */
    private void kickModelled() {
        if (!switches.isOn(LegacyBehavior.AIO_WAIT_KICK_WITHOUT_BARRIER)) {
            visibility.fence("aio_wait_kick");
        }
        if (visibility.load(modelledWaiters, "aio_wait_kick") > 0) {
            kickBh.schedule();
            wakeDelegated();
        }
    }

    /** num_waiters as other threads see it (under the model: its drained value). */
    public int waiters() {
        return visibility == null ? numWaiters.get() : modelledWaiters.visible();
    }

    /**
     * AIO_WAIT_WHILE's {@code qatomic_inc(&num_waiters)} and the
     * {@code smp_mb__after_rmw()} bug 007 added after it, so the kicker sees
     * the waiter or the waiter sees the kicker's update of the condition.
     */
    private void countWaiter() {
        if (visibility == null) {
            numWaiters.incrementAndGet(); // a volatile RMW: ordered before the condition's volatile reads
            return;
        }
        visibility.add(modelledWaiters, 1);
        if (!switches.isOn(LegacyBehavior.AIO_WAIT_KICK_WITHOUT_BARRIER)) {
            visibility.fence("AIO_WAIT_WHILE: smp_mb__after_rmw");
        }
    }

    private void uncountWaiter() {
        if (visibility == null) {
            numWaiters.decrementAndGet();
        } else {
            visibility.add(modelledWaiters, -1);
        }
    }

    /** Polls until {@code cond} is false; returns whether it had to poll at all. */
    public static boolean pollWhile(AioContext ctx, BooleanSupplier cond) {
        return ctx.aioWait().pollWhileIn(ctx, cond);
    }

    /**
     * QEMU's {@code aio_wait_bh_oneshot}: runs {@code task} in {@code ctx}'s
     * home thread (at once when already there) and polls until it has run. A
     * failure of the task is logged by {@code ctx}, as any callback's.
     */
    public static void runInHome(AioContext ctx, String what, Runnable task) {
        if (ctx.inHomeThread()) {
            task.run();
            return;
        }
        VisibilityModel model = ctx.mainLoop().visibilityModel();
        if (model != null) {
            runInHomeModelled(model, ctx, what, task);
            return;
        }
        AtomicBoolean done = new AtomicBoolean();
        ctx.bhScheduleOneshot(what, () -> {
            try {
                task.run();
            } finally {
                done.set(true);
                ctx.aioWait().kick();
            }
        });
        pollWhile(ctx, () -> !done.get());
    }

    /** {@link #runInHome} with its {@code done} flag (aio_wait_bh's {@code data->done}) under the store-buffer model. */
    private static void runInHomeModelled(VisibilityModel model, AioContext ctx, String what, Runnable task) {
        VisibilityModel.Field done = model.field(what + ": done", 0);
        ctx.bhScheduleOneshot(what, () -> {
            try {
                task.run();
            } finally {
                model.set(done, 1);
                ctx.aioWait().kick();
            }
        });
        pollWhile(ctx, () -> model.load(done, "AIO_WAIT_WHILE condition") == 0);
    }

    boolean pollWhileIn(AioContext ctx, BooleanSupplier cond) {
        boolean legacy = ctx.legacy().isOn(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN);
        // Counted in both branches, as QEMU's AIO_WAIT_WHILE does: a kick from any
        // thread then wakes a main loop waiting, even on its own context.
        countWaiter();
        try {
            if (ctx.inHomeThread()) {
                return waitInHome(ctx, cond, legacy);
            }
            return AioContext.current() == null ? waitDelegated(ctx, cond) : waitFromMain(ctx, cond, legacy);
        } finally {
            uncountWaiter();
        }
    }

    private static boolean waitInHome(AioContext ctx, BooleanSupplier cond, boolean legacy) {
        boolean waited = false;
        if (legacy) {
            while (cond.getAsBoolean()) {
                ctx.poll(true);
                waited = true;
            }
            return waited;
        }
        // Seed 000: keep polling while the condition holds or the last poll made progress.
        boolean busy = true;
        for (;;) {
            boolean c = cond.getAsBoolean();
            if (!c && !busy) {
                return waited;
            }
            busy = ctx.poll(c);
            waited |= c || busy;
        }
    }

    /**
     * The wait of a thread that runs no event loop (a migration thread, a
     * worker; QEMU: one without the BQL): it polls no context, because a
     * context has one poller, its home thread, and the notify_me handshake
     * relies on that (3c18a92dc4, "aio-wait: delegate polling of main
     * AioContext if BQL not held"). The home threads run the work; this
     * thread releases {@code ctx}'s lock once, as AIO_WAIT_WHILE does, and
     * sleeps until the next {@link #kick()}, then re-checks. The kick count
     * is read before the condition, so a kick between the check and the
     * sleep is not lost.
     */
    private boolean waitDelegated(AioContext ctx, BooleanSupplier cond) {
        AioContextLock lock = ctx.lock();
        boolean waited = false;
        synchronized (delegatedKick) {
            delegatedWaiters++;
        }
        try {
            for (;;) {
                long seen;
                synchronized (delegatedKick) {
                    seen = kicks;
                }
                if (!cond.getAsBoolean()) {
                    return waited;
                }
                waited = true;
                boolean held = lock.isHeldByCurrentThread();
                if (held) {
                    lock.release();
                }
                try {
                    synchronized (delegatedKick) {
                        while (kicks == seen) {
                            delegatedKick.wait();
                        }
                    }
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new java.util.concurrent.CancellationException("interrupted while '"
                            + Thread.currentThread().getName() + "' waited on AioContext '" + ctx.name() + "'");
                } finally {
                    if (held) {
                        lock.acquire();
                    }
                }
            }
        } finally {
            synchronized (delegatedKick) {
                delegatedWaiters--;
            }
        }
    }

    private static boolean waitFromMain(AioContext ctx, BooleanSupplier cond, boolean legacy) {
        AioContext current = AioContext.current();
        if (current == null || !current.isMain() || current.mainLoop() != ctx.mainLoop()) {
            throw new IllegalStateException("pollWhile on AioContext '" + ctx.name() + "' from thread '"
                    + Thread.currentThread().getName() + "': only its home thread or the main loop may wait on it");
        }
        AioContextLock lock = ctx.lock();
        boolean waited = false;
        if (legacy) {
            while (cond.getAsBoolean()) {
                waited = true;
                pollMainOnce(current, lock);
            }
            return waited;
        }
        boolean busy = true;
        while (busy) {
            if (cond.getAsBoolean()) {
                waited = busy = true;
                pollMainOnce(current, lock);
            } else {
                busy = ctx.poll(false);
                waited |= busy;
            }
        }
        return waited;
    }

    /** One blocking poll of the main context with the target context's lock released once, if held. */
    private static void pollMainOnce(AioContext main, AioContextLock lock) {
        boolean held = lock.isHeldByCurrentThread();
        if (held) {
            lock.release();
        }
        try {
            main.poll(true);
        } finally {
            if (held) {
                lock.acquire();
            }
        }
    }
}
