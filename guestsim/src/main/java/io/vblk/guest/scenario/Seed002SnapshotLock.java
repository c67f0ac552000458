package io.vblk.guest.scenario;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.txn.ExternalSnapshot;
import io.vblk.txn.Transaction;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Seed 002: a {@code transaction} of two {@code blockdev-snapshot-sync}
 * actions, for two disks served by the same IOThread, while the guest
 * writes and verifies one of them through the Linux-like driver.
 * <ul>
 * <li>Fixed: each action's prepare takes io0's lock, drains its disk, creates
 *     and appends the overlay, and releases the lock before the next action;
 *     commit and clean take it again for their own work. The drained
 *     sections last from prepare to clean. Both devices now write their
 *     overlays; the guest's verification never fails.</li>
 * <li>Legacy ({@link LegacyBehavior#SNAPSHOT_LOCK_ACROSS_TRANSACTION}): the
 *     first prepare keeps the lock, the second takes it again (depth 2) and
 *     drains its disk: {@code pollWhile} releases the lock once, io0 —
 *     which must run the drain hook and complete the guest's requests —
 *     still cannot take it, and the transaction hangs.</li>
 * </ul>
 */
public final class Seed002SnapshotLock implements Scenario {
    private static final long SIZE = 8L << 20;

    @Override
    public String id() {
        return "seed-002";
    }

    @Override
    public String title() {
        return "snapshot-lock-across-transaction";
    }

    @Override
    public String upstreamCommit() {
        return "2d24b60b77";
    }

    @Override
    public String summary() {
        return "external_snapshot_prepare kept the AioContext acquired until clean: a second snapshot in the "
                + "same transaction drains with the lock held twice and hangs";
    }

    @Override
    public String explain() {
        return "Seed 002 (2d24b60b77, \"block: don't keep AioContext acquired after "
                + "external_snapshot_prepare()\").\n"
                + "Threads: the main loop (the transaction), IOThread io0 (serving both disks), vCPU 0 (a "
                + "Linux-like guest writing and verifying disk 1 through the driver).\n"
                + "Steps: while the guest's I/O runs, a transaction of two blockdev-snapshot-sync actions, one "
                + "per disk, runs in the main loop; each prepare takes io0's lock, drains its disk, creates and "
                + "appends the overlay.\n"
                + "Fix: each phase takes the lock for its own work and releases it at its end (prepare's goto "
                + "out), so the second prepare's drain holds it once; pollWhile releases it, io0 completes the "
                + "guest's requests, and both devices move to their overlays while the guest's verification "
                + "keeps passing.\n"
                + "Legacy (SNAPSHOT_LOCK_ACROSS_TRANSACTION) reverts the lock scope only: prepare keeps the "
                + "lock until clean, the second prepare holds it twice, pollWhile releases it once and io0 can "
                + "never take it: the watchdog reports the transaction hung with the lock depth in the dump.";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-seed002-");
        try {
            Path boot = DefaultDisk.create(dir.resolve("boot.raw"), SIZE);
            Path data = dir.resolve("data.raw");
            Files.write(data, new byte[0]);
            try (var ch = java.nio.channels.FileChannel.open(data, java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(SIZE);
                ch.write(java.nio.ByteBuffer.wrap(new byte[1]), SIZE - 1);
            }
            LegacySwitches sw = new LegacySwitches();
            List<String> io0 = List.of("io0");
            MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.image(boot, "raw").withIothreads(io0),
                            DiskSpec.image(data, "raw").withIothreads(io0)))
                    .withLegacy(sw).withFirmware(new Firmware.Options(Duration.ofSeconds(30), Duration.ofSeconds(30)));
            Duration ok = Duration.ofSeconds(60);
            try (Machine m = Machine.start(cfg)) {
                BootReport b = m.boot();
                if (b.verdict() != BootVerdict.MBR_OK) {
                    throw new IllegalStateException(id() + ": boot failed: " + b.verdict());
                }
                LinuxGuest g = LinuxGuest.probe(m, 1, 1, 256, true);
                AtomicBoolean stop = new AtomicBoolean();
                LinuxGuest.Run run = g.start(new GuestWorkload.Spec(4, 4096, IoPattern.parse("randrw:50"), true, false),
                        stop::get, null, 2);
                m.watchdog(ok).call("guest I/O under way", () -> {
                    io.vblk.aio.AioWait.pollWhile(m.mainLoop().context(), () -> run.completed() < 64);
                    return null;
                });
                List<ExternalSnapshot> actions = List.of(
                        new ExternalSnapshot(m.blockLayer(), m.disk(0).backend().root(), dir.resolve("boot-snap.qcow2"),
                                "disk0-snap"),
                        new ExternalSnapshot(m.blockLayer(), m.disk(1).backend().root(), dir.resolve("data-snap.qcow2"),
                                "disk1-snap"));
                sw.set(LegacyBehavior.SNAPSHOT_LOCK_ACROSS_TRANSACTION, legacy);
                Staged<Void> txn = Staged.await(m.watchdog(hangBound), "transaction: two blockdev-snapshot-sync",
                        m.mainLoop().run("transaction", () -> Transaction.run(m.blockLayer(), actions)));
                if (txn.hung()) {
                    stop.set(true);
                    return txn.result(this, legacy, hangBound, "the second prepare holds io0's lock twice; pollWhile "
                            + "releases it once and io0 never gets it");
                }
                long before = run.completed();
                m.watchdog(ok).call("guest I/O on the overlays", () -> {
                    io.vblk.aio.AioWait.pollWhile(m.mainLoop().context(), () -> run.completed() < before + 64);
                    return null;
                });
                stop.set(true);
                for (CompletableFuture<Void> f : run.done()) {
                    m.await("guest workload", f, ok);
                }
                if (run.firstProblem() != null) {
                    throw new IllegalStateException(id() + ": guest verification failed: " + run.firstProblem());
                }
                String r0 = m.disk(0).backend().root().name();
                String r1 = m.disk(1).backend().root().name();
                if (!"disk0-snap".equals(r0) || !"disk1-snap".equals(r1)) {
                    throw new IllegalStateException(id() + ": devices on '" + r0 + "' and '" + r1 + "' after the snapshot");
                }
                return txn.result(this, legacy, hangBound, "both devices write their overlays; " + run.completed()
                        + " verified guest requests");
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }
}
