package io.vblk.aio;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Holds a context's home thread at a point of its loop until released:
 * at the start of its next poll (it has not looked at its BHs or fds yet;
 * no lock held) or at its next sleep point (announced in notify_me, lock
 * released, about to enter epoll_wait). It turns a race window — "the
 * IOThread has not run that BH yet", "the IOThread is about to sleep" — into
 * a deterministic step for tests and the seed scenarios. It behaves the same
 * whatever {@link LegacyBehavior} is on: a hang that follows arises from what
 * the other threads did meanwhile, not from the hold.
 */
public final class LoopHold implements AutoCloseable {
    private final AioContext ctx;
    private final boolean atSleep;
    private final java.util.function.BooleanSupplier when;
    private final CountDownLatch held = new CountDownLatch(1);
    private final CountDownLatch released = new CountDownLatch(1);
    private final AtomicBoolean armed = new AtomicBoolean(true);

    private LoopHold(AioContext ctx, boolean atSleep, java.util.function.BooleanSupplier when) {
        this.ctx = ctx;
        this.atSleep = atSleep;
        this.when = when;
    }

    /** Holds {@code ctx}'s home thread at its next sleep point (arm from any thread, the home thread included). */
    public static LoopHold atNextSleep(AioContext ctx) {
        return atNextSleep(ctx, () -> true);
    }

    /** Holds at the first sleep point at which {@code when} holds (e.g. "its external fds are masked"). */
    public static LoopHold atNextSleep(AioContext ctx, java.util.function.BooleanSupplier when) {
        LoopHold h = new LoopHold(ctx, true, when);
        ctx.setSleepHook(h::hold);
        return h;
    }

    /** Holds {@code ctx}'s home thread at the start of its next poll, before it takes its lock or any BH. */
    public static LoopHold atNextPoll(AioContext ctx) {
        LoopHold h = new LoopHold(ctx, false, () -> true);
        ctx.setPollStartHook(h::hold);
        return h;
    }

    private void hold() {
        if (!armed.get() || !when.getAsBoolean() || !armed.getAndSet(false)) {
            return;
        }
        held.countDown();
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

    /** Waits (bounded by the watchdog) until the home thread is held. */
    public void awaitHeld(Watchdog watchdog, String what) {
        watchdog.await(what, held);
    }

    public boolean isHeld() {
        return held.getCount() == 0 && released.getCount() != 0;
    }

    /** Lets the home thread go to sleep (or wake, if it was notified meanwhile). */
    public void release() {
        armed.set(false);
        if (atSleep) {
            ctx.setSleepHook(null);
        } else {
            ctx.setPollStartHook(null);
        }
        released.countDown();
    }

    @Override
    public void close() {
        release();
    }
}
