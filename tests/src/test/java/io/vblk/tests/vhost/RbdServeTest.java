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
        Path log = dir.resolve("serve-" + image + ".out");
        Process p = new ProcessBuilder(Tools.javaCommand("io.vblk.cli.Main", "serve", "--socket", sock.toString(),
                "--image", cluster.filename(image))).redirectErrorStream(true).redirectOutput(log.toFile()).start();
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
}
