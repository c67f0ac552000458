package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.block.BlkDebugDriver;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.Machine;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlk;

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 016, QEMU bfa36802d1 "virtio-blk: avoid using ioeventfd state in irqfd
 * conditional": a completion an IOThread signals inside a dataplane stop's
 * drain takes the main-loop notification path from the IOThread.
 */
public final class Bug016IrqfdByThread implements Scenario {
    @Override
    public String id() {
        return "016-irqfd-by-thread";
    }

    @Override
    public String title() {
        return "irqfd-choice-by-thread";
    }

    @Override
    public String upstreamCommit() {
        return "bfa36802d1";
    }

    @Override
    public String summary() {
        return "virtio-blk chose irqfd vs virtio_notify by ioeventfd state: an IOThread completing inside stop's "
                + "drain notified the guest through the BQL path without the BQL";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (runs the dataplane stop), io0 (serves queue 0 and the backend), io1 "
                        + "(serves queue 1), vCPU 1 (the guest driver).",
                "Steps: the guest reads on queue 1; the read is held in the backend (a blkdebug suspension). The "
                        + "main loop stops the dataplane; the stop detaches the host notifiers, clears 'started' "
                        + "(bug 014's order) and drains the backend. When the drain begins, the main loop is held at "
                        + "its next poll (the step seam, armed in both runs) and the read is released: io0 completes "
                        + "it, io1 pushes it to the used ring and runs the batch's notification BH; the main loop is "
                        + "let go once that notification ran, so it runs inside the drain, in io1.",
                "The fix decides the notification path by the thread: io1 takes the irqfd (virtio_notify_irqfd). "
                        + "In vblk the path is bound with the queue's serving context, i.e. the thread that runs the "
                        + "BH. Pre-fix QEMU keyed it on ioeventfd_started && !disabled, which the stop already "
                        + "cleared, so io1 called virtio_notify — the BQL path — without the BQL, racing the main "
                        + "thread on the interrupt state.",
                "Legacy switch IRQFD_CHOICE_BY_IOEVENTFD_STATE restores exactly that condition (the dataplane's "
                        + "started flag) in VirtioBlk.signalGuest. The device counts every main-loop-path "
                        + "notification made off the home thread, whatever the switch: fixed, none; legacy, io1's. "
                        + "vblk's PCI transport carries such an interrupt to the main loop in a BH, so the guest "
                        + "still gets it: the failure is the broken invariant (QEMU's unsynchronised injection), "
                        + "not a lost interrupt.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.IRQFD_CHOICE_BY_IOEVENTFD_STATE, legacy);
        try (Machine m = GuestRead.twoQueueMachine(sw)) {
            BlkQueue q1 = GuestRead.queueOne(m);
            AioContext main = m.mainLoop().context();
            VirtioBlk dev = m.disk(0).device();
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension inBackend = dbg.suspend("the guest's read", BlkDebugDriver.Op.READ, 0, 4096);
            CompletableFuture<Void> draining = new CompletableFuture<>();
            CompletableFuture<String> notifiedInDrain = new CompletableFuture<>();
            LoopHold[] hold = new LoopHold[1];
            boolean[] stopping = {false};
            dev.setObserver(new RequestObserver() {
                @Override
                public void drainedBegin() {
                    if (stopping[0] && hold[0] == null) {
                        hold[0] = LoopHold.atNextPoll(main); // the stop waits in its drain until io1 notified
                        draining.complete(null);
                    }
                }

                @Override
                public void notified(int queue, boolean irqfd) {
                    if (queue == 1 && hold[0] != null && !notifiedInDrain.isDone()) {
                        notifiedInDrain.complete(Thread.currentThread().getName() + " via "
                                + (irqfd ? "irqfd" : "the main-loop path"));
                        hold[0].release();
                    }
                }
            });
            CompletableFuture<Integer> guest = GuestRead.sectorZero(m, 1, q1, null);
            m.await("the read held in the backend", inBackend.reached(), Duration.ofSeconds(30));
            long before = dev.offThreadNotifications();
            long t0 = System.nanoTime();
            stopping[0] = true;
            CompletableFuture<Void> stop = m.mainLoop().run("dataplane stop", () -> m.disk(0).dataplane().stopIoeventfd());
            String how;
            try {
                m.await("the stop draining", draining, Duration.ofSeconds(30));
                inBackend.resume(); // the read completes inside the stop's drain
                how = m.await("io1's notification inside the stop's drain", notifiedInDrain, hangBound);
                m.await("dataplane stop", stop, hangBound);
            } catch (HangDetectedException e) {
                throw new IllegalStateException(id() + ": the stop did not finish: " + e.getMessage());
            } finally {
                if (hold[0] != null) {
                    hold[0].release();
                }
            }
            int status;
            try {
                status = m.await("the guest's interrupt for its read", guest, hangBound);
            } catch (HangDetectedException e) {
                return new ScenarioResult(id(), title(), legacy, true, HANGS_NO_INTERRUPT, System.nanoTime() - t0,
                        hangBound, "notified by " + how + "; the guest waits for its interrupt", e.dump());
            }
            long ns = System.nanoTime() - t0;
            long off = dev.offThreadNotifications() - before;
            if (off > 0) {
                return new ScenarioResult(id(), title(), legacy, true, "injects an interrupt off the main thread", ns,
                        hangBound, "notified by " + how + " during the stop's drain (" + off
                                + " main-loop-path notification(s) off the main thread); guest status " + status,
                        null);
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    "notified by " + how + " during the stop's drain; guest status " + status, null);
        }
    }

    private static final String HANGS_NO_INTERRUPT = "loses the guest's interrupt";
}
