package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.txn.ExternalSnapshot;
import io.vblk.txn.Transaction;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 009 (QEMU 7f16476fab, "block: Fix blk->in_flight during
 * blk_wait_while_drained()"): a guest request that reaches a drained
 * BlockBackend parks until drained-end; if it keeps its in-flight reference
 * while parked, the drain that parked it waits for it forever.
 *
 * <p>The machine's disk has two queues (QEMU's {@code iothread-vq-mapping}):
 * queue 0 and the backend live in IOThread io0, queue 1 in io1, so a request
 * of queue 1 crosses from io1 to io0 through the device's hand-off. The
 * guest reads sector 0 on queue 1 from vCPU 1 while the main loop runs a
 * {@code blockdev-snapshot-sync} transaction of the disk, whose prepare
 * drains it. Two step seams (the same in both runs) put the request in the
 * hand-off when the drain begins:
 * <ol>
 * <li>io0 is held at the start of its next poll ({@link LoopHold}): it has
 *     not run its BHs yet.</li>
 * <li>io1 pops the guest's request; at virtio-blk's {@code submitted} trace
 *     point it arms a hold of itself at its next poll, goes on to hand the
 *     request to io0 (in transit; io0's hand-off BH scheduled) and stops
 *     there.</li>
 * <li>The main loop begins the snapshot: io0's lock, then drained begin of
 *     the disk — the backend is quiesced, the device stops popping, and
 *     (the device's {@code drainedBegin} trace point) io0 is let go; the
 *     drain polls while the device has a request in transit.</li>
 * <li>io0 runs the hand-off: the request reaches the quiesced backend and
 *     parks there (QEMU's {@code blk_wait_while_drained}); it is no longer in
 *     transit.</li>
 * </ol>
 * <ul>
 * <li>Fixed: the parked request does not count as in flight; the drain's
 *     poll finds nothing to wait for, the snapshot completes, drained-end
 *     resubmits the request to the overlay, and the guest reads its MBR.</li>
 * <li>Legacy ({@link LegacyBehavior#BLK_IN_FLIGHT_WHILE_QUEUED}): the parked
 *     request keeps its in-flight reference, as before the fix. The drain
 *     waits for {@code in_flight} to reach 0, which only happens once the
 *     request resumes at drained-end — after the drain: the watchdog
 *     reports the hang and the dump shows the backend with
 *     {@code in_flight=1 quiesce=1 queued=1}. Once diagnosed, the scenario
 *     turns the switch off and wakes the main loop: the parked read stops
 *     counting, the drain ends, and the machine tears down with no loop
 *     stuck (the verdict is the hang already detected).</li>
 * </ul>
 * The switch is read where the count is read ({@code BlockBackend}'s
 * in-flight count includes the parked requests while it is on), so the
 * holds, the guest's request and the snapshot are the same in both runs.
 */
public final class Bug009BlkInFlightWhileDrained implements Scenario {
    private static final long SIZE = 8L << 20;
    private static final int BLOCK = 4096;

    @Override
    public String id() {
        return "009-blk-in-flight-drained";
    }

    @Override
    public String title() {
        return "blk-in-flight-while-drained";
    }

    @Override
    public String upstreamCommit() {
        return "7f16476fab";
    }

    @Override
    public String summary() {
        return "a request parked while the BlockBackend was drained kept its in_flight reference; the drain waited "
                + "for it forever";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: vCPU 1 (the guest reads on queue 1), io1 (serves queue 1), io0 (serves queue 0, home of "
                        + "the backend), the main loop (blockdev-snapshot-sync: drains the disk).",
                "1. io0 is held at the start of its next poll (a LoopHold): it has not run its BHs yet.",
                "2. io1 pops the guest's read and, at virtio-blk's 'submitted' trace point, arms a hold of itself at "
                        + "its next poll; it hands the request to io0 (in transit) and stops.",
                "3. The main loop's snapshot prepare takes io0's lock and drains the disk: the backend is quiesced, "
                        + "the device stops popping; at the device's 'drainedBegin' trace point io0 is let go. The "
                        + "drain polls while a request is in transit.",
                "4. io0 runs the hand-off: the read reaches the quiesced backend and parks until drained-end "
                        + "(blk_wait_while_drained).",
                "Fixed (7f16476fab): a parked request drops its in_flight reference; the drain completes, the "
                        + "snapshot is taken, drained-end resubmits the read to the overlay, the guest gets its MBR.",
                "Legacy (BLK_IN_FLIGHT_WHILE_QUEUED): the parked request keeps counting in flight; drained begin waits "
                        + "for in_flight 0, which needs drained end: a circular wait the watchdog reports. (Then the "
                        + "switch goes off and the main loop is woken, so the machine tears down cleanly.)");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-bug009-");
        try {
            Path disk = DefaultDisk.create(dir.resolve("disk.raw"), SIZE);
            LegacySwitches sw = new LegacySwitches();
            MachineConfig cfg = MachineConfig.of(2, 2, List.of(DiskSpec.image(disk, "raw").withQueues(2)
                            .withIothreads(List.of("io0", "io1"))))
                    .withLegacy(sw).withFirmware(new Firmware.Options(Duration.ofSeconds(30), Duration.ofSeconds(30)));
            Duration ok = Duration.ofSeconds(60);
            try (Machine m = Machine.start(cfg)) {
                BootReport b = m.boot();
                if (b.verdict() != BootVerdict.MBR_OK) {
                    throw new IllegalStateException(id() + ": boot failed: " + b.verdict());
                }
                LinuxGuest g = LinuxGuest.probe(m, 0, 2, 256, true);
                VirtioBlk dev = m.disk(0).device();
                AioContext io0 = m.iothread("io0").context();
                AioContext io1 = m.iothread("io1").context();
                if (dev.backend().context() != io0 || dev.queueContext(1) != io1) {
                    throw new IllegalStateException(id() + ": backend in " + dev.backend().context().name()
                            + ", queue 1 in " + dev.queueContext(1).name() + "; expected io0 and io1");
                }
                sw.set(LegacyBehavior.BLK_IN_FLIGHT_WHILE_QUEUED, legacy); // the only difference between the runs
                return staged(m, g, dev, io0, io1, dir, legacy, hangBound, ok);
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    private ScenarioResult staged(Machine m, LinuxGuest g, VirtioBlk dev, AioContext io0, AioContext io1, Path dir,
                                  boolean legacy, Duration hangBound, Duration ok) {
        LoopHold hold0 = LoopHold.atNextPoll(io0);
        CompletableFuture<LoopHold> hold1 = new CompletableFuture<>();
        try {
            io0.bhScheduleOneshot("bug009-wake-io0", () -> { }); // io0 sleeps: wake it so it reaches its next poll
            hold0.awaitHeld(m.watchdog(ok), "io0 held before its next poll");
            dev.setObserver(new RequestObserver() {
                @Override
                public void submitted(int queue, int type, long sector) {
                    if (queue == 1 && !hold1.isDone()) {
                        hold1.complete(LoopHold.atNextPoll(io1)); // io1 itself: after the hand-off, before its next poll
                    }
                }

                @Override
                public void drainedBegin() {
                    if (hold1.isDone()) {
                        hold0.release(); // the drain has quiesced the backend: io0 may run the hand-off now
                    }
                }
            });
            BlkQueue q = g.driver().queue(1);
            CompletableFuture<String> read = m.runOnVcpu(1, "read sector 0 on vq1", p -> {
                q.bindTo(p);
                q.allocateSlots(1, BLOCK);
                q.submit(0, VirtioBlkAbi.T_IN, 0, BLOCK);
                q.kick();
                InterruptLine irq = p.interrupts();
                for (;;) {
                    int slot = q.reap();
                    if (slot >= 0) {
                        int st = q.status(slot);
                        if (st != VirtioBlkAbi.S_OK) {
                            return "status " + st;
                        }
                        long buf = q.buffer(slot);
                        return p.ramRead8(buf + 510) == 0x55 && p.ramRead8(buf + 511) == 0xaa ? null
                                : "sector 0 has no MBR signature";
                    }
                    if (!q.enableInterrupts()) {
                        continue;
                    }
                    irq.await(-1);
                }
            });
            LoopHold h1 = m.await("io1 popped the guest's read", hold1, ok);
            h1.awaitHeld(m.watchdog(ok), "io1 handed the read to io0 and is held");
            ExternalSnapshot snap = new ExternalSnapshot(m.blockLayer(), dev.backend().root(),
                    dir.resolve("disk-snap.qcow2"), "disk0-snap");
            CompletableFuture<Void> op = m.mainLoop().run("transaction",
                    () -> Transaction.run(m.blockLayer(), List.of(snap)));
            Staged<Void> txn = Staged.await(m.watchdog(hangBound), "blockdev-snapshot-sync (drains the disk)", op);
            h1.release();
            if (txn.hung()) {
                int counted = dev.backend().inFlight();
                // Diagnosed. With the switch off the parked read stops counting; woken, the drain sees it and the
                // snapshot and the read finish, so the machine tears down with no loop stuck in the drain.
                m.config().legacy().set(LegacyBehavior.BLK_IN_FLIGHT_WHILE_QUEUED, false);
                m.mainLoop().context().bhScheduleOneshot("bug009-recheck", () -> { });
                m.await("the snapshot, once the parked read stopped counting", op, ok);
                m.await("the guest's read on vq1", read, ok);
                return txn.result(this, legacy, hangBound, "the guest's read parked in the drained backend keeps "
                        + "in_flight=" + counted + "; the drain waits for it, it waits for drained end");
            }
            String problem = m.await("the guest's read on vq1", read, ok);
            if (problem != null) {
                throw new IllegalStateException(id() + ": the guest's read: " + problem);
            }
            if (!"disk0-snap".equals(dev.backend().root().name())) {
                throw new IllegalStateException(id() + ": device on '" + dev.backend().root().name()
                        + "' after the snapshot");
            }
            return txn.result(this, legacy, hangBound, "the read parked during the snapshot's drain without counting "
                    + "in flight and completed from the overlay");
        } finally {
            hold0.release();
            if (hold1.isDone()) {
                hold1.join().release();
            }
            dev.setObserver(null);
        }
    }
}
