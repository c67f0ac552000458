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
 * Bug 013, QEMU 8f5e9a8ee1 "block/export: wait for vhost-user-blk requests
 * when draining": a drain that waits for the block layer only ends while a
 * request still has its push and notify ahead of it, and the stop moves the
 * queue under it.
 */
public final class Bug013DrainWholeRequests implements Scenario {
    @Override
    public String id() {
        return "013-drain-whole-requests";
    }

    @Override
    public String title() {
        return "drain-waits-for-whole-requests";
    }

    @Override
    public String upstreamCommit() {
        return "8f5e9a8ee1";
    }

    @Override
    public String summary() {
        return "draining a vhost-user-blk export waited for the block layer only: a request between blk I/O "
                + "completion and its push + notify was left running while the export changed context";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (runs the dataplane stop), io0 (the backend and queue 0), io1 (queue 1), "
                        + "vCPU 1 (the guest driver). The code under test is the one vblk serve's vhost-user-blk "
                        + "export runs too (VirtioBlk behind VirtioBlkDataplane); the machine's PCI function drives "
                        + "it here so the stop can be staged from the main loop.",
                "Steps: the guest reads on queue 1; the read is held in the backend (a blkdebug suspension). io1 is "
                        + "held at the start of its next poll (the step seam), then the read is released: io0 "
                        + "finishes the block I/O and hands the completion to io1, whose push + notify are now "
                        + "pending (the window between 'blk I/O completed' and 'vq push + notify'). The main loop "
                        + "stops the dataplane: drain the backend, then rebind every queue to the main loop. io1 is "
                        + "let go at the first poll the main loop makes inside the stop while the device's "
                        + "drained-poll reports requests under way (a poll-start hook on the main loop, armed the "
                        + "same in both runs); otherwise when the stop has returned.",
                "The fix makes the drain wait for whole requests (QEMU: a .drained_poll reporting the export's "
                        + "in-flight counter; vblk: VirtioBlk.drainedPoll counting requests between contexts, and "
                        + "the stop waiting until every popped request was answered): the main loop polls, io1 is "
                        + "let go, pushes and notifies, the drain ends and the queue moves empty.",
                "Legacy switch DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY reverts both waits to the block layer's idea of "
                        + "idle: the drain ends at once (the backend has no request), and the stop rebinds queue 1 "
                        + "with the completion still in its hand-off to io1. vblk's hand-off refuses to be deleted "
                        + "with a request in it (QEMU went on: vring corruption or a lost completion), so the stop "
                        + "fails there; io1 then completes the read in the queue's old context.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY, legacy);
        try (Machine m = GuestRead.twoQueueMachine(sw)) {
            BlkQueue q1 = GuestRead.queueOne(m);
            AioContext main = m.mainLoop().context();
            AioContext io1 = m.iothread("io1").context();
            VirtioBlk dev = m.disk(0).device();
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension inBackend = dbg.suspend("the guest's read", BlkDebugDriver.Op.READ, 0, 4096);
            CompletableFuture<Boolean> blkDone = new CompletableFuture<>();
            CompletableFuture<Void> draining = new CompletableFuture<>();
            LoopHold[] io1Hold = new LoopHold[1];
            boolean[] stopping = {false};
            boolean[] releasedInDrain = {false};
            dev.setObserver(new RequestObserver() {
                @Override
                public void blockCompleted(int queue, boolean handedOff) {
                    if (queue == 1) {
                        blkDone.complete(handedOff);
                    }
                }

                @Override
                public void drainedBegin() {
                    if (stopping[0]) {
                        draining.complete(null);
                    }
                }
            });
            CompletableFuture<Integer> guest = GuestRead.sectorZero(m, 1, q1, null);
            m.await("the read held in the backend", inBackend.reached(), Duration.ofSeconds(30));
            long t0 = System.nanoTime();
            String failure = null;
            try {
                stopping[0] = true;
                CompletableFuture<Void> stop = m.mainLoop().run("dataplane stop",
                        () -> m.disk(0).dataplane().stopIoeventfd());
                m.await("the stop draining", draining, Duration.ofSeconds(30));
                io1Hold[0] = LoopHold.atNextPoll(io1);
                io1.aioNotify(); // io1 leaves its sleep and is held before its next poll
                io1Hold[0].awaitHeld(m.watchdog(Duration.ofSeconds(30)), "io1 held before its next poll");
                inBackend.resume(); // blk I/O completes in io0; push + notify wait in io1's hand-off
                if (!m.await("the backend completing the read", blkDone, Duration.ofSeconds(30))) {
                    throw new IllegalStateException(id() + ": the completion was not handed to io1; not staged");
                }
                // The main loop polls inside the drain while the device tells it requests are under way: let io1 go.
                main.setPollStartHook(() -> {
                    if (!dev.drainedPoll()) {
                        return; // a poll of the block layer's part of the wait (or no wait for the rest at all)
                    }
                    main.setPollStartHook(null);
                    releasedInDrain[0] = !stop.isDone();
                    io1Hold[0].release();
                });
                main.aioNotify(); // a main loop already asleep in the drain polls again
                try {
                    m.await("dataplane stop", stop, hangBound);
                } catch (HangDetectedException e) {
                    return new ScenarioResult(id(), title(), legacy, true, System.nanoTime() - t0, hangBound,
                            "the dataplane stop did not finish", e.dump());
                } catch (RuntimeException e) {
                    failure = e.getMessage();
                }
            } finally {
                main.setPollStartHook(null);
                if (io1Hold[0] != null) {
                    io1Hold[0].release();
                }
            }
            long ns = System.nanoTime() - t0;
            sw.set(LegacyBehavior.DRAIN_WAITS_FOR_BLOCK_LAYER_ONLY, false); // teardown: the close stops with the fix
            int status;
            try {
                status = m.await("the guest's interrupt for its read", guest, hangBound);
            } catch (HangDetectedException e) {
                return new ScenarioResult(id(), title(), legacy, true, "loses a completion", ns, hangBound,
                        "the guest waits for its read" + (failure == null ? "" : "; the stop failed: " + failure),
                        e.dump());
            }
            if (failure != null) {
                return new ScenarioResult(id(), title(), legacy, true, "ends a drain with a completion in transit",
                        ns, hangBound, "the stop moved queue 1 before its completion was pushed: " + failure
                                + "; the read then completed in io1 (status " + status + ")", null);
            }
            if (!releasedInDrain[0]) {
                throw new IllegalStateException(id() + ": the stop never waited inside its drain; not staged");
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    "the stop's drain waited for io1's push + notify; guest status " + status, null);
        }
    }
}
