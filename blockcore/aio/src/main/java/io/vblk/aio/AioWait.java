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
 * IOThreads is refused.
 *
 * <p>Lock depth: the wait releases the caller's hold on the context lock
 * exactly once, as QEMU does. Callers therefore never hold it recursively
 * across a wait (seeds 002 and 003); the watchdog's dump shows holder and
 * depth when one does.
 */
public final class AioWait {
    private final AtomicInteger numWaiters = new AtomicInteger();
    private volatile BottomHalf kickBh;

    AioWait() {
    }

    void bind(AioContext main) {
        kickBh = main.bhNew("aio-wait-kick", () -> { });
    }

    /** Wakes the main loop if it waits in {@link #pollWhile}: QEMU's {@code aio_wait_kick}. */
    public void kick() {
        if (numWaiters.get() > 0) {
            kickBh.schedule();
        }
    }

    public int waiters() {
        return numWaiters.get();
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

    boolean pollWhileIn(AioContext ctx, BooleanSupplier cond) {
        boolean legacy = ctx.legacy().isOn(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN);
        // Counted in both branches, as QEMU's AIO_WAIT_WHILE does: a kick from any
        // thread then wakes a main loop waiting, even on its own context.
        numWaiters.incrementAndGet();
        try {
            return ctx.inHomeThread() ? waitInHome(ctx, cond, legacy) : waitFromMain(ctx, cond, legacy);
        } finally {
            numWaiters.decrementAndGet();
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
