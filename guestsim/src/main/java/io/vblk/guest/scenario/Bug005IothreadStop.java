package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.aio.MainLoop;
import io.vblk.aio.Watchdog;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 005, QEMU 2362a28ea1 "iothread: fix iothread_stop() race condition":
 * an IOThread stopped between its loop's check of the stop flag and its
 * poll's announcement in notify_me. The pre-fix stop (a flag and an
 * aio_notify) is lost there; the fix's stop, a BH in the IOThread's own
 * context, is not. Replayed in its era: both runs use the aio_notify protocol
 * of 2015–2020 ({@link LegacyBehavior#AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME}),
 * because vblk's (QEMU's since August 2020) marks a context notified whatever
 * notify_me says and a poller re-checks that mark, which rescues the flag too.
 */
public final class Bug005IothreadStop implements Scenario {
    @Override
    public String id() {
        return "005-iothread-stop";
    }

    @Override
    public String title() {
        return "stop-by-bh-not-flag";
    }

    @Override
    public String upstreamCommit() {
        return "2362a28ea1";
    }

    @Override
    public String summary() {
        return "iothread_stop set a stop flag and called aio_notify: an IOThread past its flag check but not yet "
                + "announced in notify_me got no wake-up, slept on, and the join hung";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: IOThread io0 (its loop: while (running) aio_poll(ctx, true)), the scenario's thread as "
                        + "the stopper (QEMU's main thread in iothread_stop / object deletion).",
                "Era: both runs switch on " + LegacyBehavior.AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME + ", QEMU's aio_notify "
                        + "before August 2020: it sets ctx->notified and the eventfd only if notify_me is raised, and "
                        + "aio_poll, after raising notify_me, re-reads its BHs and timers but not 'notified'. vblk's "
                        + "own protocol (QEMU's since then) re-checks 'notified' and would rescue the flag stop as well, "
                        + "so without the era switch the legacy stop completes (Bug005Test shows it).",
                "Steps: io0 is held at the start of its next poll (LoopHold, the same seam in both runs): it has read "
                        + "running == true and not yet raised notify_me. The stopper calls IOThread.requestStop(), "
                        + "then io0 is let go and the stopper waits for io0's thread to end.",
                "Fix: the stop is a one-shot BH scheduled in io0's context. aio_notify finds notify_me == 0 and does "
                        + "nothing, but io0 raises notify_me, re-reads its BHs, finds the stop BH, runs it and ends.",
                "Legacy (" + LegacyBehavior.IOTHREAD_STOP_BY_FLAG_AND_NOTIFY + ") restores the pre-fix stop: running "
                        + "= false and aio_notify. The notify finds notify_me == 0 and does nothing; io0 raises notify_me, "
                        + "finds no BH, timer or fd event and sleeps in epoll_wait with nothing left to wake it; the "
                        + "join waits until the watchdog reports the hang. A later aio_notify (notify_me now raised) "
                        + "wakes io0, which sees the flag and ends.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        return run(legacy, hangBound, true);
    }

    /** With {@code before2020} false the scenario runs vblk's own notify protocol (the era switch off). */
    public ScenarioResult run(boolean legacy, Duration hangBound, boolean before2020) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME, before2020);
        sw.set(LegacyBehavior.IOTHREAD_STOP_BY_FLAG_AND_NOTIFY, legacy);
        try (MainLoop loop = new MainLoop("main-loop", sw)) {
            Watchdog ok = loop.watchdog(Duration.ofSeconds(30));
            IOThread io0 = loop.newIOThread("io0", 0);
            AioContext ctx0 = io0.context();
            ok.await("io0 round trip", ctx0.run("tick", () -> { }));
            CompletableFuture<Void> ended = threadEnd(io0.thread());
            // A clean start: no eventfd write left over. An aio_notify that lands after a poll's epoll_wait
            // returned but before it left notify_me leaves the eventfd readable, and the next sleep wakes at once
            // (harmless then and in QEMU, but it would wake the legacy run's sleeper). So io0 is held at a sleep
            // point (notify_me raised), notified there — the eventfd it then reads takes every earlier write with
            // it — and held again at the start of the poll after.
            LoopHold asleep = LoopHold.atNextSleep(ctx0);
            LoopHold held;
            try {
                ctx0.run("round the loop", () -> { });
                asleep.awaitHeld(ok, "io0 at its sleep point");
                held = LoopHold.atNextPoll(ctx0);
                ctx0.aioNotify(); // notify_me is raised: this writes the eventfd io0 wakes on
            } finally {
                asleep.release();
            }
            long t0;
            try {
                held.awaitHeld(ok, "io0 past its stop-flag check, before its poll");
                io0.requestStop();
                t0 = System.nanoTime();
            } finally {
                held.release();
            }
            Staged<Void> stop = Staged.await(loop.watchdog(hangBound), "io0's thread ending after iothread_stop",
                    ended);
            try {
                if (stop.hung()) {
                    ctx0.aioNotify(); // io0 sleeps announced now: this one writes the eventfd
                    ok.await("io0 ending once woken", ended);
                    return stop.result(this, legacy, hangBound, "lost wake-up: the stop flag was set and aio_notify "
                            + "ran while io0 had not raised notify_me, so it wrote no eventfd; io0 then slept with no "
                            + "BH, timer or fd event to wake it (a later aio_notify woke it and it ended)");
                }
                return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound, legacy
                        ? "io0 re-checked 'notified' after raising notify_me, did not sleep, and saw the flag"
                        : "io0 found the stop BH after raising notify_me and ended", null);
            } finally {
                io0.close();
            }
        }
    }

    /** Completes when {@code t} has ended: a joiner thread, so a watchdog can bound the wait. */
    private static CompletableFuture<Void> threadEnd(Thread t) {
        CompletableFuture<Void> f = new CompletableFuture<>();
        Thread joiner = new Thread(() -> {
            try {
                t.join();
                f.complete(null);
            } catch (InterruptedException e) {
                f.completeExceptionally(e);
            }
        }, "join-" + t.getName());
        joiner.setDaemon(true);
        joiner.start();
        return f;
    }
}
