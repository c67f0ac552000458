package io.vblk.guest.scenario;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.guest.migration.GuestBlockIo;
import io.vblk.guest.migration.MigrationHandoff;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * Seed 003 end to end: a migration hand-off of a machine whose two disks
 * are served by one IOThread.
 *
 * <p>The source's guest writes a pattern to its data disk. Both disks are
 * also exported from io0 (an NBD-style export, QEMU's
 * {@code -export ...,iothread=io0}), which keeps their nodes in io0 when
 * the VM stops — as virtio-scsi's dataplane did in the seed's report, where
 * stopping the VM left the disks in the IOThread. The hand-off: the source
 * pauses, flushes, and inactivates every node; the destination — the same
 * images, its guest already booted and held paused — activates them, resumes
 * and reads the pattern back, then keeps writing.
 * <ul>
 * <li>Fixed: {@code inactivateAll} acquires io0's lock once; each node's
 *     flush waits with {@code pollWhile}, which releases it, so io0 completes
 *     the flushes.</li>
 * <li>Legacy ({@link LegacyBehavior#RECURSIVE_LOCK_IN_INACTIVATE_ALL}): the
 *     lock is acquired once per node — four nodes, depth 4; the first flush's
 *     wait releases it once, io0 never gets it, and the migration hangs.</li>
 * </ul>
 */
public final class Seed003InactivateAll implements Scenario {
    private static final long SIZE = 8L << 20;
    private static final long TAG_SOURCE = 0x5eed0003L;
    private static final long TAG_DEST = 0xde57L;

    @Override
    public String id() {
        return "seed-003";
    }

    @Override
    public String title() {
        return "inactivate-all-recursive-lock";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-seed003-");
        try {
            Path boot = DefaultDisk.create(dir.resolve("boot.raw"), SIZE);
            Path data = dir.resolve("data.raw");
            try (var ch = java.nio.channels.FileChannel.open(data, java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.WRITE)) {
                ch.truncate(SIZE);
                ch.write(java.nio.ByteBuffer.wrap(new byte[1]), SIZE - 1);
            }
            List<String> io0 = List.of("io0");
            List<DiskSpec> disks = List.of(DiskSpec.image(boot, "raw").withIothreads(io0),
                    DiskSpec.image(data, "raw").withIothreads(io0));
            Firmware.Options fw = new Firmware.Options(Duration.ofSeconds(30), Duration.ofSeconds(30));
            LegacySwitches sw = new LegacySwitches();
            Duration ok = Duration.ofSeconds(60);
            try (Machine src = Machine.start(MachineConfig.of(1, 1, disks).withLegacy(sw).withFirmware(fw));
                 Machine dst = Machine.start(MachineConfig.of(1, 1, disks).withFirmware(fw))) {
                boot(src);
                LinuxGuest srcGuest = LinuxGuest.probe(src, 1, 1, 256, true);
                boot(dst);
                GuestBlockIo dstIo = new GuestBlockIo(dst, LinuxGuest.probe(dst, 1, 1, 256, true));
                MigrationHandoff.incoming(dst, ok);

                GuestBlockIo srcIo = new GuestBlockIo(src, srcGuest);
                expectNull(srcIo.write(16, 32, TAG_SOURCE, ok), "source guest write");
                src.watchdog(ok).run("export both disks from io0", () -> {
                    for (Machine.Disk d : src.disks()) {
                        BlockNode n = d.backend().root();
                        try (AioContextLock.Held h = n.context().acquire()) {
                            BlockBackend export = src.blockLayer().newBackend("export-" + n.name());
                            export.attach(n);
                            export.pin("NBD export served from IOThread 'io0'");
                        }
                    }
                });
                sw.set(LegacyBehavior.RECURSIVE_LOCK_IN_INACTIVATE_ALL, legacy);
                Staged<Void> stop = Staged.run("migration: stop, flush, inactivate all",
                        () -> MigrationHandoff.stopSource(src, hangBound));
                if (stop.hung()) {
                    return stop.result(this, legacy, hangBound, "inactivateAll holds io0's lock once per node; the "
                            + "flush's pollWhile releases it once and io0 never completes the flush");
                }
                MigrationHandoff.startDestination(dst, ok);
                expectNull(dstIo.verify(16, 32, TAG_SOURCE, ok), "destination read-back of the source's data");
                expectNull(dstIo.write(48, 16, TAG_DEST, ok), "destination guest write");
                expectNull(dstIo.verify(48, 16, TAG_DEST, ok), "destination read-back");
                return stop.result(this, legacy, hangBound, "the destination read the source's data back and went on "
                        + "writing");
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    private void boot(Machine m) {
        BootReport b = m.boot();
        if (b.verdict() != BootVerdict.MBR_OK) {
            throw new IllegalStateException(id() + ": boot failed: " + b.verdict());
        }
    }

    private void expectNull(String problem, String what) {
        if (problem != null) {
            throw new IllegalStateException(id() + ": " + what + ": " + problem);
        }
    }
}
