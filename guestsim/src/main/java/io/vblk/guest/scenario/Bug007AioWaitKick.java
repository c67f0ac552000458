package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.AioWait;
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
 * Bug 007, "aio_wait_kick: add missing memory barrier" (7455ff1aa0): the
 * Dekker handshake between {@code AIO_WAIT_WHILE} and {@code aio_wait_kick},
 * replayed under the store-buffer {@link VisibilityModel}.
 */
public final class Bug007AioWaitKick implements Scenario {
    @Override
    public String id() {
        return "007-aio-wait-kick";
    }

    @Override
    public String title() {
        return "aio-wait-kick-missing-barrier";
    }

    @Override
    public String upstreamCommit() {
        return "7455ff1aa0";
    }

    @Override
    public String summary() {
        return "aio_wait_kick reads num_waiters with no barrier: the waiter and the kicker each miss the other's store";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (the waiter) and IOThread io0 (the kicker).",
                "The main loop detaches a host notifier from io0 in io0's own thread, as dataplane stop does:",
                "AioWait.runInHome (QEMU's aio_wait_bh_oneshot) schedules a BH in io0, then AIO_WAIT_WHILE",
                "counts itself in num_waiters, reads the BH's 'done' flag and blocks in the main context.",
                "io0 runs the BH: detach, done = true, aio_wait_kick(), which schedules the main loop's",
                "wake-up BH only if it reads num_waiters > 0.",
                "This is the visibility-model replay, not historic-bugs.md's logical variant (kick moved",
                "before the condition write): the code keeps its order, only the barriers go.",
                "Visibility model: a store to num_waiters or to 'done' stays in the storing thread's store",
                "buffer (other threads read the old value) until that thread passes smp_mb() or a system",
                "call (epoll_wait, an eventfd write); atomic RMWs are buffered too, as C11 orders them only",
                "against seq-cst accesses. notify_me is modelled the same way (bug 006's fix is on here).",
                "Steps, with the same seams in both runs: io0 is held before its next poll (LoopHold), so",
                "the BH waits; the main loop counts itself, reads done == 0 and is held at the start of its",
                "blocking poll (LoopHold); io0 is let go: it runs the BH and kicks, and is held at its next",
                "sleep; then the main loop is let go.",
                "Fixed: smp_mb__after_rmw() after the count and smp_mb() at the start of aio_wait_kick",
                "drain both buffers, so io0 reads num_waiters == 1 and schedules the kick: the main loop",
                "wakes, reads done == 1 and returns.",
                "Legacy (" + LegacyBehavior.AIO_WAIT_KICK_WITHOUT_BARRIER + ") removes exactly those two barriers:",
                "io0 reads num_waiters == 0 while the main loop's count is still buffered, schedules nothing,",
                "and the main loop sleeps in epoll_wait with nothing to wake it; the watchdog reports the",
                "hang, and the dump's visibility-model section names the stale read.",
                "Without the model (runWithoutModel) the legacy code completes too: the JVM's volatile",
                "accesses are sequentially consistent, which is the barrier the fix adds.");
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
        sw.set(LegacyBehavior.AIO_WAIT_KICK_WITHOUT_BARRIER, legacy);
        VisibilityModel vm = modelled ? new VisibilityModel() : null;
        Watchdog ok;
        try (MainLoop loop = new MainLoop("main-loop", sw, vm);
             EventNotifier hostNotifier = new EventNotifier()) {
            ok = loop.watchdog(Duration.ofSeconds(30));
            IOThread io0 = loop.newIOThread("io0", 0);
            AioContext ctx0 = io0.context();
            AioContext main = loop.context();
            AioHandler handler = ok.await("attach the host notifier in io0", ctx0.submit("attach",
                    () -> ctx0.setFdHandler(new AioHandler.Builder("vq0-host-notifier", hostNotifier.fd())
                            .external(true).onRead(hostNotifier::testAndClear))));

            // Seam 1: io0 between two polls, before it looks at its BHs.
            LoopHold io0BeforeBh = LoopHold.atNextPoll(ctx0);
            ctx0.aioNotify();
            io0BeforeBh.awaitHeld(ok, "io0 held before its next poll");
            AtomicBoolean detached = new AtomicBoolean();
            LoopHold io0AfterKick = null;
            CompletableFuture<LoopHold> mainHoldArmed = new CompletableFuture<>();
            try {
                CompletableFuture<Void> stop = loop.run("detach the host notifier in io0 (aio_wait_bh_oneshot)", () -> {
                    // Seam 2: the waiter at the start of its blocking poll, after it read the condition.
                    mainHoldArmed.complete(LoopHold.atNextPoll(main));
                    AioWait.runInHome(ctx0, "detach vq0", () -> {
                        handler.remove();
                        detached.set(true);
                    });
                });
                LoopHold mainBeforeSleep = ok.await("main loop hold armed", mainHoldArmed);
                try {
                    mainBeforeSleep.awaitHeld(ok, "main loop held after reading the condition");
                    // Seam 3: io0 at its first sleep after the BH, i.e. after aio_wait_kick.
                    io0AfterKick = LoopHold.atNextSleep(ctx0, detached::get);
                    io0BeforeBh.release();
                    io0AfterKick.awaitHeld(ok, "io0 held after running the BH and kicking");
                } finally {
                    mainBeforeSleep.release();
                }
                Staged<Void> wait = Staged.await(loop.watchdog(hangBound), "AIO_WAIT_WHILE for the detach BH", stop);
                String stale = vm == null ? "" : vm.staleLoads().stream().filter(l -> l.contains(" in aio_wait_kick "))
                        .findFirst().orElse("");
                if (wait.hung()) {
                    return wait.result(this, legacy, hangBound, "the kick was lost: " + stale);
                }
                if (!detached.get()) {
                    throw new IllegalStateException(id() + ": the wait returned before the BH ran");
                }
                return wait.result(this, legacy, hangBound, vm == null
                        ? "without the visibility model (the JVM's sequentially consistent volatiles)"
                        : "io0 read num_waiters=1 and kicked the main loop");
            } finally {
                io0BeforeBh.release();
                if (io0AfterKick != null) {
                    io0AfterKick.release();
                }
            }
        }
    }
}
