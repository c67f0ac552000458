package io.vblk.guest.scenario;

import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.block.BlockNode;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.firmware.BootVerdict;
import io.vblk.firmware.Firmware;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.job.JobOptions;
import io.vblk.job.JobStatus;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Seed 000, second trace: {@code system_reset} while a mirror job is READY,
 * with the disk on a dataplane — {@code qemu_system_reset → virtio_pci_reset
 * → virtio_blk_data_plane_stop → blk_set_aio_context → bdrv_set_aio_context
 * → bdrv_detach_aio_context → block_job_detach_aio_context → mirror_drain →
 * blk_drain → bdrv_drained_begin → bdrv_drain_recurse} (spinning).
 *
 * <p>The machine boots from a disk served by io0; a mirror of it to a new
 * qcow2 image reaches READY and idles (nothing is dirty, it waits for guest
 * writes). The reset stops the dataplane, which moves the disk's graph —
 * source, filter, target — back to the main loop, holding io0's lock. Before
 * its nodes leave io0 the job must stop: the move pauses it and waits until
 * it is paused or completed, entering it and draining its I/O. Entering an
 * idle job schedules its BH in io0, and io0 cannot run it: the main loop
 * holds its lock.
 * <ul>
 * <li>Fixed: the drain's {@code pollWhile}, finding nothing in flight, still
 *     polls io0 (without blocking) until no progress: the job's BH runs, the
 *     job reaches its pause point, the move goes on, the firmware boots
 *     again; the mirror is then completed, the device pivots to the target
 *     and boots from it.</li>
 * <li>Legacy ({@link LegacyBehavior#POLL_WHILE_WITHOUT_BH_DRAIN}): in_flight
 *     is 0, so the drain does not poll at all; the loop spins in the main
 *     loop holding io0's lock, as the backtrace shows.</li>
 * </ul>
 */
public final class Seed000MirrorReset implements Scenario {
    private static final long SIZE = 4L << 20;

    @Override
    public String id() {
        return "seed-000-reset";
    }

    @Override
    public String title() {
        return "mirror-ready-system-reset";
    }

    @Override
    public String upstreamCommit() {
        return "91af091f92";
    }

    @Override
    public String summary() {
        return "system_reset with a READY mirror on a dataplane: the drain in block_job_detach_aio_context "
                + "never ran the job's BH (in_flight 0) and spun holding the IOThread's lock";
    }

    @Override
    public String explain() {
        return "Seed 000 (91af091f92, \"block: Drain BH in bdrv_drained_begin\"), second trace: the "
                + "system_reset backtrace.\n"
                + "Threads: the main loop, IOThread io0 (serving the boot disk's dataplane), vCPU 0 (the "
                + "firmware).\n"
                + "Steps: the machine boots from a disk on io0; a mirror to a new qcow2 image reaches READY and "
                + "idles. The reset stops the dataplane, which moves source, filter and target back to the main "
                + "loop while holding io0's lock; before the nodes leave io0 the job must pause: entering the "
                + "idle job schedules its BH in io0.\n"
                + "Fix: the drain's pollWhile, finding nothing in flight, still polls io0 without blocking "
                + "until no progress: the job's BH runs, the job pauses, the move goes on, the firmware boots "
                + "again; the mirror then completes, the device pivots to the target and boots from it.\n"
                + "Legacy (POLL_WHILE_WITHOUT_BH_DRAIN) reverts the loop condition only: with in_flight 0 the "
                + "drain does not poll at all, and the main loop spins holding io0's lock, as the upstream "
                + "backtrace shows; the watchdog reports it.\n"
                + "After the diagnosis the scenario turns the switch off so the spinning loop polls io0 and the "
                + "machine closes.";
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        Path dir = Files.createTempDirectory("vblk-seed000r-");
        try {
            Path disk = DefaultDisk.create(dir.resolve("disk.raw"), SIZE);
            Path target = dir.resolve("target.qcow2");
            Qcow2.create(target, SIZE);
            LegacySwitches sw = new LegacySwitches();
            MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.image(disk, "raw").withIothreads(List.of("io0"))))
                    .withLegacy(sw).withFirmware(new Firmware.Options(Duration.ofSeconds(30), Duration.ofSeconds(30)));
            Duration ok = Duration.ofSeconds(60);
            try (Machine m = Machine.start(cfg); BlockJobs jobs = new BlockJobs(m.blockLayer())) {
                expectBoot(m, m.boot(), "first boot");
                Job mirror = m.watchdog(ok).call("blockdev-mirror", () -> {
                    BlockNode t = m.blockLayer().openImage("target", target, "qcow2", false);
                    Job j = jobs.mirror("mirror0", m.disk(0).backend().root(), t, null, JobOptions.defaults());
                    t.unref();
                    return j;
                });
                m.watchdog(ok).await("mirror ready", mirror.ready());
                sw.set(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN, legacy);
                Staged<CompletableFuture<BootVerdict>> reset = Staged.await(m.watchdog(hangBound), "system reset",
                        m.mainLoop().submit("system reset", m::systemReset));
                if (reset.hung()) {
                    // diagnosed; turning the switch off lets the spinning loop poll io0, so the reset ends and
                    // the machine tears down without waiting out the teardown bounds
                    sw.set(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN, false);
                    return reset.result(this, legacy, hangBound, "the mirror job never reaches its pause point: its BH "
                            + "waits in io0, whose lock the spinning main loop holds");
                }
                expectBoot(m, m.awaitBoot(reset.result()), "boot after the reset");
                if (mirror.status() != JobStatus.READY) {
                    throw new IllegalStateException(id() + ": mirror is " + mirror.status() + " after the reset");
                }
                m.watchdog(ok).run("block-job-complete", () -> jobs.complete("mirror0"));
                int ret = m.watchdog(ok).await("mirror concluded", mirror.concluded());
                if (ret != 0 || !"target".equals(m.disk(0).backend().root().name())) {
                    throw new IllegalStateException(id() + ": the pivot failed: " + mirror.describe());
                }
                expectBoot(m, m.awaitBoot(m.systemReset()), "boot from the mirror target");
                return reset.result(this, legacy, hangBound, "the job paused during the move; the device pivoted to the "
                        + "target and booted from it");
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    private void expectBoot(Machine m, BootReport r, String what) {
        if (r.verdict() != BootVerdict.MBR_OK) {
            throw new IllegalStateException(id() + ": " + what + " failed: " + r.verdict() + "\n"
                    + String.join("\n", r.console()) + (r.dump() != null ? "\n" + r.dump() : ""));
        }
    }
}
