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

import java.time.Duration;
import java.util.concurrent.CompletableFuture;

/**
 * Seed 001 at the dataplane: "guest I/O gets stuck if notify_guest_bh was
 * scheduled but doesn't run" before the irqfds are torn down.
 *
 * <p>The disk's two queues are served by io0 (with the backend) and io1.
 * An interrupt-driven guest reads on queue 1 and waits for the interrupt.
 * The read is held in the backend (a blkdebug suspension) while the main loop
 * stops the dataplane; once the stop drains, it is released: it completes
 * during the drain, io1 pushes it to the used ring and
 * schedules the batched notification — and io1 is held before its next poll,
 * i.e. it has not run that BH yet. Fixed, the stop flushes every pending
 * notification while the irqfds still reach the guest. Legacy (the flush
 * reverted), the stop finishes and releases the irqfds; when io1 later runs
 * the BH it signals an irqfd nobody listens to, and the guest waits forever.
 * The backend's own context is quiesced by the move, so only the flush can
 * save a notification pending in another queue's context.
 */
public final class Seed001DataplaneStop implements Scenario {
    @Override
    public String id() {
        return "seed-001-dataplane";
    }

    @Override
    public String title() {
        return "notify-flush-on-stop";
    }

    @Override
    public String upstreamCommit() {
        return "c2b6428d38";
    }

    @Override
    public String summary() {
        return "dataplane stop tore down the irqfds while notify_guest_bh was still pending in an IOThread: the "
                + "guest never gets its completion interrupt";
    }

    @Override
    public String explain() {
        return "Seed 001 (c2b6428d38, \"block: quiesce AioContext when detaching from it\"), dataplane half: "
                + "\"guest I/O gets stuck if notify_guest_bh was scheduled but doesn't run\".\n"
                + "Threads: the main loop (the stop), IOThreads io0 (backend, queue 0) and io1 (queue 1), vCPU "
                + "1 (an interrupt-driven guest reading on queue 1). Seams: a blkdebug suspension holds the "
                + "read in the backend; a LoopHold holds io1 before its next poll once it has completed the "
                + "read (armed by a RequestObserver).\n"
                + "Steps: the guest submits, kicks and waits for its interrupt; the main loop stops the "
                + "dataplane; once the stop drains, the read is released, completes inside the drain, io1 "
                + "pushes it to the used ring and schedules the batched notification BH, and is held before "
                + "running it.\n"
                + "Fix: the stop flushes every queue's pending notification while the irqfds still reach the "
                + "guest.\n"
                + "Legacy (NO_NOTIFY_FLUSH_ON_STOP) reverts only that flush: the stop finishes and releases the "
                + "irqfds; io1 later signals an irqfd nobody listens to, and the guest waits forever (the count "
                + "of lost signals is reported).";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.NO_NOTIFY_FLUSH_ON_STOP, legacy);
        try (Machine m = GuestRead.twoQueueMachine(sw)) {
            BlkQueue q1 = GuestRead.queueOne(m);
            AioContext io1 = m.iothread("io1").context();
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension inBackend = dbg.suspend("the guest's read", BlkDebugDriver.Op.READ, 0, 4096);
            CompletableFuture<Void> draining = new CompletableFuture<>();
            LoopHold[] hold = new LoopHold[1];
            m.disk(0).device().setObserver(new RequestObserver() {
                @Override
                public void drainedBegin() {
                    draining.complete(null);
                }

                @Override
                public void completed(int queue, int status) {
                    if (queue == 1 && hold[0] == null) {
                        hold[0] = LoopHold.atNextPoll(io1); // io1 has not run its notification BH yet
                    }
                }
            });
            // the guest announces it waits for the interrupt (interrupts enabled, nothing to reap); a guest that
            // reaches its first reap only after the completion would find it without any interrupt
            CompletableFuture<Void> waiting = new CompletableFuture<>();
            CompletableFuture<Integer> guest = GuestRead.sectorZero(m, 1, q1, waiting);
            m.await("the read held in the backend", inBackend.reached(), Duration.ofSeconds(30));
            m.await("the guest waiting for its interrupt", waiting, Duration.ofSeconds(30));
            long t0 = System.nanoTime();
            CompletableFuture<Void> stop = m.mainLoop().run("dataplane stop", () -> m.disk(0).dataplane().stopIoeventfd());
            try {
                m.await("the stop draining", draining, Duration.ofSeconds(30));
                inBackend.resume(); // the read completes inside the stop's drain
                m.await("dataplane stop", stop, Duration.ofSeconds(60));
            } finally {
                if (hold[0] != null) {
                    hold[0].release();
                }
            }
            if (hold[0] == null) {
                throw new IllegalStateException(id() + ": the read completed outside the stop; not staged");
            }
            try {
                int status = m.await("the guest's interrupt for its last completion", guest, hangBound);
                return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound,
                        "guest interrupted, status " + status, null);
            } catch (HangDetectedException e) {
                long lost = m.disk(0).transport().signalsWhileReleased();
                return new ScenarioResult(id(), title(), legacy, true, System.nanoTime() - t0, hangBound,
                        "guest waits for an interrupt; " + lost + " signal(s) went to a released irqfd", e.dump());
            }
        }
    }
}
