package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.EventNotifier;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.aio.MainLoop;
import io.vblk.aio.VisibilityModel;
import io.vblk.aio.Watchdog;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Bug 006, "async: use explicit memory barriers" (5710a3e09f): the
 * notify_me / notified handshake between a poller about to sleep and a
 * thread scheduling a bottom half, replayed under the store-buffer
 * {@link VisibilityModel}.
 */
public final class Bug006AsyncBarriers implements Scenario {
    @Override
    public String id() {
        return "006-async-barriers";
    }

    @Override
    public String title() {
        return "notify-me-without-explicit-barrier";
    }

    @Override
    public String upstreamCommit() {
        return "5710a3e09f";
    }

    @Override
    public String summary() {
        return "aio_poll trusted its atomic add to notify_me as a barrier: the poller sleeps and aio_notify skips the eventfd";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: IOThread io0 (the poller, idle) and the main loop (the notifier).",
                "The handshake (AioNotifier.aioNotify states it): the poller raises notify_me, then reads",
                "'notified' (QEMU 5.0: the BH flags) and sleeps if nothing is pending; the notifier sets",
                "'notified' and schedules the BH, then reads notify_me and writes the eventfd if it is set.",
                "Each side needs store->load order, or each reads the other's old value.",
                "Visibility model: the poller's stores to notify_me stay in its store buffer (other threads",
                "read the old value) until it passes smp_mb() or a system call (epoll_wait, an eventfd",
                "read or write). aio_notify's own smp_mb() (there before and after the fix) publishes",
                "'notified' and the BH before it reads notify_me, so those need no buffer.",
                "The model drains a thread's buffer at the latest at the end of its aio_poll iteration.",
                "Steps, with the same seam in both runs: io0 is held at its sleep point (LoopHold: it has",
                "raised notify_me and read notified == false, just before epoll_wait); the main loop",
                "schedules a one-shot BH into io0 (cross-context work is a BH); io0 is let go.",
                "Fixed: the explicit smp_mb() after raising notify_me drains the raise before 'notified'",
                "is read, so the main loop reads notify_me == 2 and writes the eventfd: io0 wakes and runs",
                "the BH.",
                "Legacy (" + LegacyBehavior.NO_EXPLICIT_BARRIER_AFTER_NOTIFY_ME + ") removes exactly that",
                "smp_mb(), trusting the atomic add as before the fix: the raise is still buffered when",
                "the main loop reads notify_me == 0, no eventfd is written, and io0 sleeps with the BH",
                "pending until the watchdog reports the hang (its dump names the stale read). A later",
                "event on another fd of io0 rescues it, as QEMU's periodic timers rescued the main loop",
                "(the tools and quiet IOThreads had none), and the stranded BH then runs.",
                "Without the model (runWithoutModel) the legacy code completes too: the JVM's volatile",
                "read-modify-write is the full barrier the fix made explicit.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        return run(legacy, hangBound, true);
    }

    /** The same steps on the JVM's own memory ordering: completes whatever the switch says. */
    public ScenarioResult runWithoutModel(boolean legacy, Duration hangBound) throws Exception {
        return run(legacy, hangBound, false);
    }

    private ScenarioResult run(boolean legacy, Duration hangBound, boolean modelled) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.NO_EXPLICIT_BARRIER_AFTER_NOTIFY_ME, legacy);
        VisibilityModel vm = modelled ? new VisibilityModel() : null;
        try (MainLoop loop = new MainLoop("main-loop", sw, vm);
             EventNotifier otherFd = new EventNotifier()) {
            Watchdog ok = loop.watchdog(Duration.ofSeconds(30));
            IOThread io0 = loop.newIOThread("io0", 0);
            AioContext ctx0 = io0.context();
            // Another fd io0 watches (a timer's, a socket's): an event on it wakes io0 whatever notify_me says.
            AtomicBoolean otherFdRead = new AtomicBoolean();
            ok.await("watch another fd in io0", ctx0.submit("watch", () -> ctx0.setFdHandler(
                    new AioHandler.Builder("other-fd", otherFd.fd()).onRead(() -> {
                        otherFd.testAndClear();
                        otherFdRead.set(true);
                    }))));

            // The seam: io0 announced in notify_me, notified read, about to enter epoll_wait; held at the
            // first such point after it consumed an event on the other fd (so nothing else will wake it).
            LoopHold beforeSleep = LoopHold.atNextSleep(ctx0, otherFdRead::get);
            CompletableFuture<String> bh;
            long t0;
            try {
                otherFd.set(); // io0 goes round its loop and reaches the seam, whatever it was doing
                beforeSleep.awaitHeld(ok, "io0 held at its sleep point");
                t0 = System.nanoTime();
                bh = ok.await("the main loop schedules a BH into io0", loop.submit("schedule into io0",
                        () -> ctx0.submit("work for io0", () -> Thread.currentThread().getName())));
            } finally {
                beforeSleep.release();
            }
            Staged<String> ran = Staged.await(loop.watchdog(hangBound), "io0 runs the BH scheduled into it", bh);
            if (ran.hung()) {
                String stale = vm == null ? "" : vm.staleLoads().stream().filter(l -> l.contains(" in aio_notify "))
                        .findFirst().orElse("");
                otherFd.set();
                String after = ok.await("the stranded BH after an event on another fd", bh);
                return ran.result(this, legacy, hangBound, "the wake-up was lost: " + stale
                        + "; an event on another fd later woke io0 and the BH ran in '" + after + "'");
            }
            // Timed from the schedule: the BH may well have run before the wait began.
            return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound, vm == null
                    ? "without the visibility model (the JVM's sequentially consistent volatiles)"
                    : "the main loop read notify_me=2 and woke io0; the BH ran in '" + ran.result() + "'", null);
        }
    }
}
