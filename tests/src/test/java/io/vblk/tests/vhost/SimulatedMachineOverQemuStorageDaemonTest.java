package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.cli.Main;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.tests.GuestProgress;
import io.vblk.tests.GuestRuns;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioRing;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;

/**
 * The simulated machine's vhost-user-blk front-end against a back-end that
 * is not vblk: {@code qemu-storage-daemon --export type=vhost-user-blk}
 * (libvhost-user). The same firmware and Linux-like driver run unchanged.
 */
@Tag("concurrency")
class SimulatedMachineOverQemuStorageDaemonTest {
    private static final Duration BOUND = Duration.ofSeconds(60);

    @Test
    void firmwareBootsAndBootsAgainAfterSystemReset(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("qsd.sock");
        try (StorageDaemon qsd = StorageDaemon.start(dir, "qsd", StorageDaemon.rawExport(img, sock, 1));
             Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()) + "\n" + qsd.report());
            BootReport again = m.awaitBoot(m.systemReset());
            assertEquals(BootVerdict.MBR_OK, again.verdict(), String.join("\n", again.console()) + qsd.report());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }

    @Test
    void linuxDriverVerifiedIoOverTwoQueuesWithPauseAndResume(@TempDir Path dir) throws Exception {
        Path img = GuestRuns.blankImage(dir, 32L << 20);
        Path sock = dir.resolve("qsd.sock");
        try (StorageDaemon qsd = StorageDaemon.start(dir, "qsd", StorageDaemon.rawExport(img, sock, 2));
             Machine m = Machine.start(MachineConfig.of(2, 0, List.of(DiskSpec.vhostUser(sock).withQueues(2))))) {
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict(), qsd.report());
            LinuxGuest g = LinuxGuest.probe(m, 0, 2, 256, true);
            assertEquals(2, g.driver().numQueues());
            GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false);
            AtomicBoolean stop = new AtomicBoolean();
            GuestProgress progress = new GuestProgress();
            LinuxGuest.Run run = g.start(spec, stop::get, new LatencySink[] {progress, progress}, 3);
            m.await("3000 guest requests", progress.reach(3000), BOUND);
            m.pause();
            long atPause = progress.count();
            m.resume();
            m.await("3000 more guest requests after resume", progress.reach(atPause + 3000), BOUND);
            GuestRuns.finish(m, stop, run, BOUND);
            assertEquals(2, m.await("one request per queue, then its interrupt", g.interruptOnEveryQueue(BOUND.dividedBy(2)), BOUND),
                    "completions arrive by MSI-X through the call descriptors");
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }

    /**
     * Found by the soak (run 11 of the 50-run soak, two CPU hogs: "device used descriptor 36 that was
     * not in flight"). libvhost-user answers GET_VRING_BASE at once, with requests still in flight,
     * and closes its call descriptor; the next of them to complete fails to signal it and qsd drops
     * the connection (vu_panic), and across the reconnect a descriptor was used twice. A throttle
     * holds up to 16 requests inside qsd at every pause here: the front-end now lets the back-end use
     * them before it stops the rings, and the connection survives the three pauses.
     */
    @Test
    void aPauseWithRequestsStillInsideTheDaemonUsesEachDescriptorOnce(@TempDir Path dir) throws Exception {
        Path img = GuestRuns.blankImage(dir, 8L << 20);
        Path sock = dir.resolve("qsd.sock");
        try (StorageDaemon qsd = StorageDaemon.start(dir, "qsd", StorageDaemon.throttledRawExport(img, sock, 200));
             Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict(), qsd.report());
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false);
            AtomicBoolean stop = new AtomicBoolean();
            GuestProgress progress = new GuestProgress();
            LinuxGuest.Run run = g.start(spec, stop::get, new LatencySink[] {progress}, 5);
            VirtQueue vq = m.disk(0).vhostUser().queue(0);
            for (int i = 0; i < 3; i++) {
                m.await("20 more requests", progress.reach(progress.count() + 20), BOUND);
                m.pause(); // up to 16 requests were waiting in the throttle
                assertEquals(m.memory().readU16(vq.availAddr() + VirtioRing.AVAIL_IDX),
                        m.memory().readU16(vq.usedAddr() + VirtioRing.USED_IDX),
                        "pause " + i + ": every request the driver made available was used before the rings stopped");
                m.resume();
            }
            m.await("20 requests after the last resume", progress.reach(progress.count() + 20), BOUND);
            GuestRuns.finish(m, stop, run, BOUND);
            assertEquals(0, m.disk(0).vhostUser().reconnects(), "qsd kept the connection:\n" + qsd.report());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }

    @Test
    void vblkBootWithVhostUserOption(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("qsd.sock");
        try (StorageDaemon qsd = StorageDaemon.start(dir, "qsd", StorageDaemon.rawExport(img, sock, 1))) {
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(new PrintWriter(out));
            cl.setErr(new PrintWriter(err));
            int rc = cl.execute("boot", "--vhost-user", sock.toString(), "--resets", "2", "--quiet");
            assertEquals(0, rc, out + "\n" + err + "\n" + qsd.report());
            assertTrue(out.toString().contains("3 (all MBR OK)"), out.toString());
        }
    }

    /** {@code vblk bench --vhost-user}: the same guest driver measures this back-end; counts land in the JSON. */
    @Test
    void vblkBenchWithVhostUserOption(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("qsd.sock");
        Path json = dir.resolve("bench.json");
        try (StorageDaemon qsd = StorageDaemon.start(dir, "qsd", StorageDaemon.rawExport(img, sock, 1))) {
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(new PrintWriter(out));
            cl.setErr(new PrintWriter(err));
            int rc = cl.execute("bench", "--vhost-user", sock.toString(), "--runtime", "1s", "--ramp", "200ms",
                    "--qd", "8", "--queues", "1", "--quiet", "--json", json.toString());
            assertEquals(0, rc, out + "\n" + err + "\n" + qsd.report());
            String j = java.nio.file.Files.readString(json);
            assertTrue(j.contains("\"errors\": 0"), j);
            assertTrue(!j.contains("\"requests\": 0,"), j);
            int refused = cl.execute("bench", "--vhost-user", sock.toString(), "--backend", "file");
            assertEquals(Main.EXIT_USAGE, refused);
            assertTrue(err.toString().contains("--backend does not apply with --vhost-user"), err.toString());
        }
    }
}
