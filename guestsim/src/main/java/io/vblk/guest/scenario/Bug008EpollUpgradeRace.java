package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.FdMonMode;
import io.vblk.aio.FdMonOptions;
import io.vblk.aio.FdMonSeam;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.dataplane.QueueMapping;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Bug 008, QEMU e62da98527 "aio-posix: fix race between epoll upgrade and
 * aio_set_fd_handler()": an IOThread's context upgrading from ppoll to epoll
 * copies its handler list while the main thread attaches a virtqueue's host
 * notifier to it; the new epoll never watches that notifier.
 */
public final class Bug008EpollUpgradeRace implements Scenario {
    /** io1's poll set at which it upgrades: its own eventfd and one queue's kick (QEMU: 64). */
    static final int THRESHOLD = 2;
    private static final Duration STEP = Duration.ofSeconds(30);

    @Override
    public String id() {
        return "008-epoll-upgrade-race";
    }

    @Override
    public String title() {
        return "epoll-upgrade-race";
    }

    @Override
    public String upstreamCommit() {
        return "e62da98527";
    }

    @Override
    public String summary() {
        return "an AioContext's upgrade from ppoll to epoll copied the handler list without its lock: a host notifier "
                + "the main thread attached meanwhile went through the old ops and the epoll never watched the "
                + "guest's kicks";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (runs the dataplane start: it attaches each queue's host notifier to the "
                        + "IOThread's context, holding that context's lock), io1 (a fresh IOThread in QEMU's default "
                        + "fd monitor mode: ppoll, upgraded to epoll once it watches " + THRESHOLD + " fds — QEMU's "
                        + "threshold is 64 — and no busy polling), vCPU 1 (the guest driver).",
                "Steps: the guest probes the two-queue disk (served by io0); io1 is held at its sleep point (a "
                        + "LoopHold: context lock released, about to wait) and the main loop moves the dataplane to "
                        + "io1 (a dataplane stop, then start). The start attaches queue 0's notifier: io1 now watches "
                        + THRESHOLD + " fds. As it attaches queue 1's (the step seam 'registering', armed the same in "
                        + "both runs) io1 is let go and, in its wait, upgrades: it copies its handler list into a "
                        + "fresh epoll and stops at the seam 'upgrade window' until queue 1's registration has either "
                        + "finished or found the handler list's lock held. Then the guest reads on queue 1 and kicks.",
                "Fix: the upgrade holds the handler list's lock (QEMU's ctx->list_lock, qemu_lockcnt_dec_if_lock) "
                        + "from the copy to the switch of the fd monitor: queue 1's registration waits for the switch "
                        + "and goes through epoll (an upgrade that cannot take the lock is left for a later wait). "
                        + "io1 sees the kick and the read completes.",
                "Legacy (" + LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK + ") reverts exactly that: the upgrade "
                        + "copies the list without the lock, and the registration goes through the poll ops (a table "
                        + "nobody waits in once the switch is made), the epoll never watches queue 1's ioeventfd, "
                        + "the guest's kick is never seen and its read never completes. The watchdog detects the "
                        + "stall; the dump lists the handler under 'NOT WATCHED by the epoll fd monitor'.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        DiskSpec disk = DiskSpec.nullDevice(64L << 20).withQueues(2).withIothreads(List.of("io0"));
        try (Machine m = Machine.start(MachineConfig.of(2, 1, List.of(disk)).withLegacy(sw))) {
            m.boot(); // the firmware assigns the BARs
            BlkQueue q1 = LinuxGuest.probe(m, 0, 2, 256, true).driver().queue(1); // the dataplane runs in io0
            IOThread io1 = m.mainLoop().newIOThread("io1", 0, FdMonOptions.poll(THRESHOLD));
            AioContext ctx = io1.context();
            String vq1 = m.disk(0).device().name() + "-vq1-kick";
            Staging staging = new Staging(ctx, vq1);
            sw.set(LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK, legacy);
            LoopHold hold = LoopHold.atNextSleep(ctx);
            staging.hold = hold;
            long t0;
            try {
                ctx.aioNotify(); // io1 comes round to its sleep point and is held there
                hold.awaitHeld(m.watchdog(STEP), "io1 held at its sleep point");
                ctx.setFdMonSeam(staging);
                t0 = System.nanoTime();
                m.await("dataplane start in io1", m.mainLoop().run("move the dataplane to io1",
                        () -> m.disk(0).dataplane().move(QueueMapping.single(io1, 2), true)), STEP);
            } finally {
                ctx.setFdMonSeam(null);
                hold.release();
            }
            String staged = staging.verdict();
            if (staged == null) {
                throw new IllegalStateException(id() + ": not staged: " + staging.problem());
            }
            CompletableFuture<Integer> guest = GuestRead.sectorZero(m, 1, q1, null);
            int status;
            try {
                status = m.await("the guest's read on queue 1 (served by io1)", guest, hangBound);
            } catch (HangDetectedException e) {
                long ns = System.nanoTime() - t0;
                String detail = "the guest's read on queue 1 never completes: a kick io1's " + ctx.fdMonMode().key()
                        + " never watched (" + names(ctx.unwatchedHandlers()) + "; " + staged + ")";
                sw.set(LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK, false);
                return new ScenarioResult(id(), title(), legacy, true, ns, hangBound,
                        detail + rescue(m, guest), e.dump());
            } finally {
                sw.set(LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK, false); // teardown with the fix
            }
            long ns = System.nanoTime() - t0;
            List<AioHandler> lost = ctx.unwatchedHandlers();
            if (!lost.isEmpty()) {
                throw new IllegalStateException(id() + ": the read completed although io1 does not watch "
                        + names(lost));
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    staged + "; the guest's read on queue 1 completed (status " + status + ")", null);
        }
    }

    /**
     * After the verdict: a dataplane restart serves the stranded request (the
     * stop kicks every queue) and attaches the notifier again, through epoll,
     * so the machine closes with no request in flight.
     */
    private static String rescue(Machine m, CompletableFuture<Integer> guest) {
        try {
            m.restartDataplane(0);
            int status = m.await("the guest's read after a dataplane restart", guest, STEP);
            return "; a dataplane restart, which attaches the notifier again, served it (status " + status + ")";
        } catch (RuntimeException e) {
            return "; a dataplane restart did not serve it either: " + e.getMessage();
        }
    }

    private static String names(List<AioHandler> hs) {
        List<String> l = new ArrayList<>();
        for (AioHandler h : hs) {
            l.add(h.name());
        }
        return l.isEmpty() ? "no handler" : String.join(", ", l);
    }

    /**
     * The seams of the staging, armed identically in both runs: queue 1's
     * registration (main loop) lets io1 go and waits until io1 is in its
     * upgrade window; io1 waits there until the registration has finished or
     * waits for the handler list's lock. Waits are bounded so a broken staging
     * fails the scenario rather than the event loops.
     */
    private static final class Staging implements FdMonSeam {
        private final AioContext ctx;
        private final String vq1;
        volatile LoopHold hold;
        private final CompletableFuture<Void> atWindow = new CompletableFuture<>();
        /** Completes when queue 1's registration has finished or waits for the handler list's lock. */
        private final CompletableFuture<Void> vq1Outcome = new CompletableFuture<>();
        private volatile boolean waitedForListLock;
        private volatile FdMonMode registeredThrough;
        private volatile String problem;

        Staging(AioContext ctx, String vq1) {
            this.ctx = ctx;
            this.vq1 = vq1;
        }

        @Override
        public void registering(String name) {
            if (!name.equals(vq1)) {
                return;
            }
            if (atWindow.isDone()) {
                problem = "io1 upgraded before queue 1's notifier was attached";
                return;
            }
            hold.release(); // io1 leaves its sleep point and, in its wait, upgrades
            if (!boundedWait(atWindow)) {
                problem = "io1 did not reach its upgrade window (it watches " + ctx.handlers().size()
                        + " handlers; fd monitor " + ctx.fdMonMode().key() + ")";
            }
        }

        @Override
        public void listLockBusy(String name) {
            if (name.equals(vq1)) {
                waitedForListLock = true;
                vq1Outcome.complete(null);
            }
        }

        @Override
        public void registered(String name, FdMonMode mode) {
            if (name.equals(vq1)) {
                registeredThrough = mode;
                vq1Outcome.complete(null);
            }
        }

        @Override
        public void upgradeWindow() {
            atWindow.complete(null);
            if (ctx.lock().owner() == Thread.currentThread()) {
                problem = "io1 upgraded in a wait under its context lock, where no registration can race";
                return;
            }
            if (!boundedWait(vq1Outcome)) {
                problem = "queue 1's notifier was not attached during io1's upgrade";
            }
        }

        /** "io1 upgraded to epoll at N fds while the main loop attached queue 1's notifier, which ...", or null. */
        String verdict() {
            FdMonMode through = registeredThrough;
            if (problem != null || !atWindow.isDone() || through == null) {
                return null;
            }
            return "io1 upgraded to epoll at " + ctx.fdMonUpgradedAt() + " fds while the main loop attached " + vq1
                    + ", which " + (waitedForListLock ? "waited for the handler list's lock and was registered "
                    + "through the " + through.key() + " ops" : "was registered through the " + through.key()
                    + " ops between io1's copy of its handlers and its switch");
        }

        String problem() {
            return problem != null ? problem
                    : !atWindow.isDone() ? "io1 never reached its upgrade window"
                    : "queue 1's notifier was never attached";
        }

        private static boolean boundedWait(CompletableFuture<?> f) {
            try {
                f.get(STEP.toMillis(), TimeUnit.MILLISECONDS);
                return true;
            } catch (TimeoutException | ExecutionException e) {
                return false;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
    }
}
