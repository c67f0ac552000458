package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
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
import java.util.concurrent.CompletableFuture;

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
    public String upstreamCommit() {
        return "bd6458e410";
    }

    @Override
    public String summary() {
        return "bdrv_inactivate_all acquired each node's AioContext once per node: migration's flush waits with "
                + "the IOThread's lock held recursively and hangs";
    }

    @Override
    public String explain() {
        return "Seed 003 (bd6458e410, \"block: avoid recursive AioContext acquire in bdrv_inactivate_all()\").\n"
                + "Threads: two machines (source and destination, the same images), each with a main loop, "
                + "IOThread io0 and vCPU 0; both source disks are also exported from io0, which keeps their "
                + "nodes there when the VM stops.\n"
                + "Steps: the source guest writes a pattern; the destination is booted, probed and held paused "
                + "(incoming); the hand-off pauses the source, flushes every disk and inactivates every node "
                + "from the source's main loop.\n"
                + "Fix: inactivateAll acquires io0's lock once per context; each node's flush waits with "
                + "pollWhile, which releases it, so io0 completes the flushes; the destination activates, reads "
                + "the pattern back and writes on.\n"
                + "Legacy (RECURSIVE_LOCK_IN_INACTIVATE_ALL) reverts only the acquire loop: once per node, four "
                + "nodes, depth 4; the first flush's wait releases one level and io0 never gets the lock: the "
                + "watchdog reports the migration hung.\n"
                + "After the diagnosis the scenario unwinds the hang instead of leaving the main loop stuck: a "
                + "main-context BH (which the stuck wait still runs) polls io0 without blocking, as a lock "
                + "holder may, until inactivateAll returns.";
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
                    unwind(src, ok);
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

    /**
     * Ends the diagnosed hang so the source closes with every loop stopped
     * (closing it while its main loop is stuck in inactivateAll would leave
     * that loop running until its contexts are closed under it). The stuck
     * wait still runs main-context BHs; each run of this one polls io0
     * without blocking — allowed from a thread that holds io0's lock, as the
     * stuck main loop does — so the flushes io0 cannot complete are completed
     * there, and reschedules itself while the main loop waits. Once
     * inactivateAll has returned and nothing waits any more, it stops.
     */
    private static void unwind(Machine src, Duration bound) {
        MainLoop loop = src.mainLoop();
        AioContext io0 = src.iothread("io0").context();
        CompletableFuture<Void> unwound = new CompletableFuture<>();
        Runnable[] pump = new Runnable[1];
        pump[0] = () -> {
            if (loop.aioWait().waiters() == 0) {
                unwound.complete(null);
                return;
            }
            io0.poll(false);
            loop.run("unwind: poll io0 for the stuck main loop", pump[0]);
        };
        loop.run("unwind: poll io0 for the stuck main loop", pump[0]);
        src.await("the diagnosed hang to unwind", unwound, bound);
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
