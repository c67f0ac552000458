package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.rbd.CephCluster;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BootReport;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.tests.GuestProgress;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code vblk serve --image rbd:pool/image} (a child process, the real
 * command line) serving an RBD image of a one-node cluster this class starts,
 * to vblk's own vhost-user front-end: the firmware boots from an image made
 * by {@code rbd import}, and the Linux-like driver's verified random I/O goes
 * through vhost-user into librbd and back; {@code rbd export} then sees what
 * the guest wrote.
 */
@Tag("rbd")
class RbdServeTest {
    private static final Duration BOUND = Duration.ofSeconds(120);
    private static CephCluster cluster;

    @BeforeAll
    static void startCluster() throws Exception {
        cluster = CephCluster.start();
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    private static Process serve(Path dir, String image, Path sock) throws Exception {
        return serve(dir, image, "", sock);
    }

    /** {@code vblk serve} of {@code rbd:rbd/IMAGE:conf=…} followed by {@code options} (":key=value…"). */
    private static Process serve(Path dir, String image, String options, Path sock) throws Exception {
        Path log = dir.resolve("serve-" + image + ".out");
        Process p = new ProcessBuilder(Tools.javaCommand("io.vblk.cli.Main", "serve", "--socket", sock.toString(),
                "--image", cluster.filename(image) + options)).redirectErrorStream(true).redirectOutput(log.toFile())
                .start();
        new SerialLog(log).await("listening on " + sock, 1, BOUND, () -> "");
        assertTrue(Tools.read(log).contains("rbd:rbd/" + image), Tools.read(log));
        return p;
    }

    /** SIGTERM: the server flushes, closes the image (rbd_close) and says so before the JVM exits (143). */
    private static void stopServe(Process p, Path dir) {
        int exit = Tools.stop(p, Duration.ofSeconds(60));
        String out = Tools.read(dir.resolve(dir.toFile().list((d, n) -> n.startsWith("serve-"))[0]));
        assertEquals(143, exit, "vblk serve ended by SIGTERM within the bound, not SIGKILL: " + out);
        assertTrue(out.contains("vblk serve: stopped"), out);
    }

    @Test
    void theFirmwareBootsFromAnImageImportedWithRbd(@TempDir Path dir) throws Exception {
        Path disk = Tools.bootDisk(dir.resolve("boot.raw"), "RBD", 8L << 20);
        cluster.rbd("import", disk.toString(), "rbd/boot");
        Path sock = dir.resolve("rbd.sock");
        Process p = serve(dir, "boot", sock);
        try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()));
        } finally {
            stopServe(p, dir);
        }
    }

    @Test
    void linuxDriverVerifiedIoOverVhostUserLandsInTheRbdImage(@TempDir Path dir) throws Exception {
        cluster.rbd("create", "--size", "32M", "rbd/data");
        Path sock = dir.resolve("rbd.sock");
        Process p = serve(dir, "data", sock);
        GuestProgress progress = new GuestProgress();
        try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict(), "a new RBD image is blank");
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false);
            AtomicBoolean stop = new AtomicBoolean();
            LinuxGuest.Run run = g.start(spec, stop::get, new LatencySink[] {progress}, 5);
            m.await("2000 guest requests on RBD", progress.reach(2000), BOUND);
            stop.set(true);
            for (CompletableFuture<Void> f : run.done()) {
                m.await("workload", f, BOUND);
            }
            assertNull(run.firstProblem(), run.firstProblem());
            GuestWorkload w = run.workloads().get(0);
            assertEquals(0, w.stats.errors);
            assertEquals(0, w.stats.mismatches);
        } finally {
            stopServe(p, dir);
        }
        Path out = dir.resolve("export.raw");
        cluster.rbd("export", "rbd/data", out.toString());
        byte[] b = Files.readAllBytes(out);
        int nonZeroSectors = 0;
        for (int s = 0; s < b.length / 512; s++) {
            for (int i = s * 512; i < s * 512 + 512; i++) {
                if (b[i] != 0) {
                    nonZeroSectors++;
                    break;
                }
            }
        }
        assertTrue(nonZeroSectors >= 8 * 100, "the guest's writes are in the image rbd exports: " + nonZeroSectors
                + " written sectors");
    }

    /**
     * Behind vhost-user there is no stop policy (the back-end has none, and
     * neither has QEMU's vhost-user-blk front-end: README, "Disks on Ceph"),
     * so what vblk promises there is that a dead cluster does not hang the
     * guest: with {@code rados_osd_op_timeout=10}, the OSD SIGKILLed under
     * the guest's I/O, the guest's requests complete with VIRTIO_BLK_S_IOERR
     * after the timeout, the machine keeps running, and SIGTERM still ends
     * {@code vblk serve} (its close is bounded) with the OSD still dead. The
     * OSD then restarts on its data for the class's other tests.
     *
     * <p>Found on the way: {@code vblk serve} dropped the filename's
     * {@code key=value} librados settings when it built its blockdev, so the
     * 10 s asked for here never applied (the conf's 300 s did) and the test
     * hung; they now travel in {@code x-rados-conf}.
     */
    @Test
    void aKilledOsdFailsTheGuestsRequestsWithAnIoErrorInsteadOfHangingThem(@TempDir Path dir) throws Exception {
        cluster.rbd("create", "--size", "16M", "rbd/eio");
        Path sock = dir.resolve("rbd.sock");
        Process p = serve(dir, "eio", ":rados_osd_op_timeout=10:rbd_cache=false", sock);
        boolean killed = false;
        try {
            GuestProgress progress = new GuestProgress();
            try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
                m.boot();
                LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
                GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false);
                AtomicBoolean stop = new AtomicBoolean();
                LinuxGuest.Run run = g.start(spec, stop::get, new LatencySink[] {progress}, 9);
                m.await("guest I/O flowing on RBD", progress.after(200), BOUND);
                long t0 = System.nanoTime();
                cluster.killOsd();
                killed = true;
                // the queue in flight fails after the timeout, the guest refills it, that fails too: 32 completions
                // after the kill include at least 16 failures
                try {
                    m.await("the queue in flight at the kill completing", progress.after(16), BOUND);
                    System.out.printf("RbdServeTest: 16 completions %.1f s after the kill, errors %d%n",
                            (System.nanoTime() - t0) / 1e9, run.workloads().get(0).stats.errors);
                    m.await("the guest's requests completing (failed) with the OSD dead", progress.after(16), BOUND);
                } catch (RuntimeException e) {
                    throw new AssertionError(e.getMessage() + "\nvblk serve's log:\n"
                            + Tools.read(dir.resolve("serve-eio.out")), e);
                }
                double s = (System.nanoTime() - t0) / 1e9;
                stop.set(true);
                for (CompletableFuture<Void> f : run.done()) {
                    m.await("the workload draining", f, BOUND);
                }
                GuestWorkload w = run.workloads().get(0);
                assertTrue(w.stats.errors >= 16, "the guest saw the failures: " + w.stats.errors + " errors");
                assertTrue(w.stats.firstProblem != null && w.stats.firstProblem.contains("status 1"),
                        "VIRTIO_BLK_S_IOERR: " + w.stats.firstProblem);
                assertTrue(s >= 9, "they failed by rados_osd_op_timeout (10 s), after " + s + " s");
                assertTrue(!m.isPaused(), "no stop policy behind vhost-user: the machine runs on");
            }
            stopServe(p, dir); // with the OSD still dead
        } finally {
            if (p.isAlive()) {
                p.destroyForcibly();
            }
            if (killed) {
                cluster.restartOsd();
            }
        }
    }
}
