package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.rbd.CephCluster;

import com.fasterxml.jackson.databind.JsonNode;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Issue 25's guest acceptance: disks on Ceph RBD served to a real Linux
 * guest over vhost-user-blk, by {@code vblk daemon} and — the same test,
 * the same arguments — by {@code qemu-storage-daemon} (its rbd driver,
 * qemu-block-extra), on the one-node cluster this class starts and shares
 * ({@link CephCluster}, contrib/ceph-one-node.sh). The guest's fio verify
 * must pass with no I/O error in its kernel log, and what the guest sees
 * must be what the cluster holds: after the guest's flush, the checksum of
 * its {@code /dev/vda} read with O_DIRECT equals the checksum of
 * {@code rbd export} of the image (another librbd client). The second test
 * moves the running guest's disk from a local qcow2 into RBD with
 * {@code blockdev-mirror} under the guest's fio verify loop; {@code
 * job-complete} pivots the export to the rbd node and the guest carries on
 * there, its data intact.
 */
@Tag("linux-guest")
@Tag("rbd")
class RbdGuestTest {
    private static final int DISK_MIB = 32;
    /** Ceph writes on a loaded two-core machine take seconds; a whole mirror may take minutes. */
    private static final Duration JOB_BOUND = Duration.ofMinutes(4);
    private static final Pattern ITERATIONS = Pattern.compile("fio iterations: (\\d+)");
    private static final Pattern MD5 = Pattern.compile("\\b([0-9a-f]{32})\\b");
    /** Returns (bounded) once the guest's block layer has requests in flight on vda. */
    private static final String IN_FLIGHT = "timeout 60 sh -c 'until read r w </sys/block/vda/inflight "
            + "&& [ $((r + w)) -gt 0 ]; do :; done'";
    private static final AtomicInteger IMAGES = new AtomicInteger();
    private static CephCluster cluster;

    @RegisterExtension
    final GuestLogs logs = new GuestLogs();

    @BeforeAll
    static void startCluster() throws Exception {
        GuestEnvironment.require(); // skipped or failed before the cluster costs anything
        cluster = CephCluster.start();
    }

    @AfterAll
    static void stopCluster() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    /** A new image of {@link #DISK_MIB} MiB in pool rbd, named after the daemon that will serve it. */
    private static String newImage(BlockdevDaemon.Kind kind) throws Exception {
        String name = "guest-" + kind.name().toLowerCase() + "-" + IMAGES.incrementAndGet();
        cluster.rbd("create", "--size", DISK_MIB + "M", "rbd/" + name);
        return name;
    }

    /**
     * {@code vblk daemon} (or qsd) with {@code --blockdev driver=rbd} as the
     * exported node; the guest's fio verify (8 MiB of random 4 KiB writes at
     * queue depth 16, then read back) passes, its kernel logs no I/O error,
     * and after the guest's flush {@code rbd export} holds exactly what the
     * guest reads.
     */
    @ParameterizedTest
    @EnumSource(BlockdevDaemon.Kind.class)
    void rbdNodeExportedOverVhostUserPassesFioVerify(BlockdevDaemon.Kind kind, @TempDir Path tmp) throws Exception {
        String image = newImage(kind);
        try (BlockdevDaemon d = BlockdevDaemon.start(kind, kind.name().toLowerCase(), logs.sockets().resolve("d.sock"),
                logs.dir(), List.of("driver=rbd,node-name=" + StorageDaemon.NODE + ",pool=rbd,image=" + image
                        + ",conf=" + cluster.conf()));
             LinuxGuest guest = LinuxGuest.boot(logs, d)) {
            assertEquals((long) DISK_MIB << 11, guest.diskSectors(), "the image's size reaches the guest");
            long t0 = System.nanoTime();
            GuestResult r = guest.run(Fio.randwriteVerify("rbd", "/dev/vda", 8, 4));
            logs.note(String.format("%s: fio verify of 8 MiB on rbd: %.1f s", kind, (System.nanoTime() - t0) / 1e9));
            assertEquals(0, r.status(), r + "\n" + guest.describe());
            Fio.Job job = Fio.parse(r);
            assertEquals(0, job.error(), r.toString());
            assertEquals(8L << 20, job.writtenBytes(), r.toString());
            assertTrue(job.readBytes() >= 8L << 20, "fio read everything back: " + r);
            assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
            assertGuestViewEqualsRbdExport(guest, image, tmp, kind);
        }
    }

    /**
     * A running guest's disk moved from a local qcow2 into RBD: the daemon
     * exports a qcow2 node; data only the qcow2 holds is written first
     * (checksummed), then the guest's fio verify loop runs while
     * {@code blockdev-add} opens the rbd image and {@code blockdev-mirror}
     * copies into it; once READY, and after the guest wrote another MiB
     * that only the job can carry over, {@code job-complete} pivots the
     * export to the rbd node under the loop. The loop's iteration in flight at the pivot
     * (written on qcow2, read back from RBD) and a fio verify wholly on RBD
     * pass, the early data reads back unchanged from RBD, and {@code rbd
     * export} equals the guest's view.
     */
    @ParameterizedTest
    @EnumSource(BlockdevDaemon.Kind.class)
    void mirrorMovesTheRunningGuestsDiskFromQcow2IntoRbd(BlockdevDaemon.Kind kind, @TempDir Path tmp)
            throws Exception {
        String image = newImage(kind);
        Path qcow2 = tmp.resolve("local.qcow2");
        Process qi = new ProcessBuilder("qemu-img", "create", "-q", "-f", "qcow2", qcow2.toString(), DISK_MIB + "M")
                .redirectErrorStream(true).start();
        assertTrue(qi.waitFor(60, java.util.concurrent.TimeUnit.SECONDS) && qi.exitValue() == 0,
                new String(qi.getInputStream().readAllBytes()));
        try (BlockdevDaemon d = BlockdevDaemon.start(kind, kind.name().toLowerCase(), logs.sockets().resolve("d.sock"),
                logs.dir(), List.of("driver=file,node-name=file0,filename=" + qcow2,
                        "driver=qcow2,node-name=" + StorageDaemon.NODE + ",file=file0"));
             LinuxGuest guest = LinuxGuest.boot(logs, d)) {
            // data that exists only in the qcow2 until the mirror copies it
            GuestResult early = guest.run(Fio.randwriteVerify("early", "/dev/vda", 4, 16));
            assertEquals(0, early.status(), early + "\n" + guest.describe());
            String earlySum = guestMd5(guest, 16, 4);

            guest.check("mkfifo /tmp/first");
            guest.startBackground("fioloop", Fio.verifyLoop(4, "/tmp/first"));
            guest.check("cat /tmp/first"); // the loop has verified once; the next job is running
            QmpClient qmp = d.qmp();
            qmp.execute("blockdev-add", Map.of("driver", "rbd", "node-name", "target", "pool", "rbd", "image", image,
                    "conf", cluster.conf().toString()));
            long t0 = System.nanoTime();
            qmp.execute("blockdev-mirror", Map.of("job-id", "mirror0", "device", StorageDaemon.NODE, "target",
                    "target", "sync", "full"));
            qmp.awaitEvent("BLOCK_JOB_READY", e -> e.path("device").asText().equals("mirror0"), JOB_BOUND);
            double ready = (System.nanoTime() - t0) / 1e9;
            // the guest writes on while the job is READY: those writes reach RBD only through the job
            long writes = guestWrites(guest);
            guest.check(writesPast(writes + 256));
            String atPivot = guest.check("cat /tmp/iterations").trim();
            qmp.execute("job-complete", Map.of("id", "mirror0"));
            JsonNode done = qmp.awaitEvent("BLOCK_JOB_COMPLETED", e -> e.path("device").asText().equals("mirror0"),
                    JOB_BOUND);
            logs.note(String.format("%s: mirror qcow2 -> rbd under the fio loop: READY after %.1f s, completed after "
                    + "%.1f s, %s loop iterations before the pivot", kind, ready, (System.nanoTime() - t0) / 1e9,
                    atPivot));
            assertFalse(done.path("data").has("error"), done.toString());
            JsonNode exports = qmp.execute("query-block-exports", Map.of());
            assertEquals("target", exports.get(0).path("node-name").asText(), "the export pivoted: " + exports);

            guest.check("touch /tmp/stop");
            GuestResult loop = guest.awaitBackground("fioloop", JOB_BOUND);
            assertEquals(0, loop.status(), "the fio loop across the pivot: " + loop + "\n" + guest.describe());
            Matcher it = ITERATIONS.matcher(loop.output());
            assertTrue(it.find(), loop.toString());
            assertTrue(Integer.parseInt(it.group(1)) > Integer.parseInt(atPivot),
                    "a loop iteration ended after the pivot (" + atPivot + " before): " + loop);
            GuestResult after = guest.run(Fio.randwriteVerify("onrbd", "/dev/vda", 4, 8));
            assertEquals(0, after.status(), "fio verify wholly on RBD: " + after + "\n" + guest.describe());
            assertEquals(earlySum, guestMd5(guest, 16, 4), "the data written on the qcow2 reads back from RBD");
            assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
            assertGuestViewEqualsRbdExport(guest, image, tmp, kind);
        }
    }

    /**
     * The cluster stops answering mid-I/O — its OSD SIGSTOPped, as a hung or
     * partitioned OSD looks to librbd — under the guest's fio verify loop
     * ({@code cache.direct=on}: no librbd cache answers reads): the guest's
     * requests stay in flight, none completes for 5 s and none fails; when
     * the OSD answers again they complete, the loop goes on and verifies,
     * and {@code rbd export} equals the guest's view: nothing lost. What
     * issue 25 asks beyond this — a killed OSD, requests failing into
     * {@code werror=stop}, the export stopping and a {@code cont} resubmitting
     * — needs an export error policy neither daemon has (README, "Disks on
     * Ceph").
     */
    @ParameterizedTest
    @EnumSource(BlockdevDaemon.Kind.class)
    void hungOsdHoldsTheGuestsRequestsUntilItAnswersAgain(BlockdevDaemon.Kind kind, @TempDir Path tmp)
            throws Exception {
        String image = newImage(kind);
        try (BlockdevDaemon d = BlockdevDaemon.start(kind, kind.name().toLowerCase(), logs.sockets().resolve("d.sock"),
                logs.dir(), List.of("driver=rbd,node-name=" + StorageDaemon.NODE + ",pool=rbd,image=" + image
                        + ",conf=" + cluster.conf() + ",cache.direct=on"));
             LinuxGuest guest = LinuxGuest.boot(logs, d)) {
            guest.check("mkfifo /tmp/first");
            guest.startBackground("fioloop", Fio.verifyLoop(4, "/tmp/first"));
            guest.check("cat /tmp/first"); // one job verified; the next is running
            long held;
            String atStop;
            cluster.stopOsd();
            try {
                guest.check(IN_FLIGHT);
                held = guestCompletions(guest);
                GuestResult quiet = guest.run("timeout 5 sh -c 'until read r a b c w rest </sys/block/vda/stat"
                        + " && [ $((r + w)) -ne " + held + " ]; do :; done'");
                assertTrue(quiet.status() == 124 || quiet.status() == 143,
                        "no request completed in 5 s while the OSD was stopped: " + quiet + "\n" + guest.describe());
                atStop = guest.check("cat /tmp/iterations").trim();
                assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log while the OSD hung");
            } finally {
                cluster.continueOsd();
            }
            long t0 = System.nanoTime();
            guest.check("timeout 120 sh -c 'until read r a b c w rest </sys/block/vda/stat && [ $((r + w)) -gt " + held
                    + " ]; do :; done'");
            logs.note(String.format("%s: first completion %.1f s after the OSD answered again; %s loop iterations "
                    + "before the stop", kind, (System.nanoTime() - t0) / 1e9, atStop));
            guest.check("touch /tmp/stop");
            GuestResult loop = guest.awaitBackground("fioloop", JOB_BOUND);
            assertEquals(0, loop.status(), "the fio loop across the hang: " + loop + "\n" + guest.describe());
            Matcher it = ITERATIONS.matcher(loop.output());
            assertTrue(it.find() && Integer.parseInt(it.group(1)) > Integer.parseInt(atStop),
                    "the iteration the hang held verified (" + atStop + " before): " + loop);
            assertEquals(List.of(), guest.ioErrors(), "I/O errors in the guest's kernel log");
            assertGuestViewEqualsRbdExport(guest, image, tmp, kind);
        }
    }

    /** Reads and writes the guest's block layer completed on vda (fields 1 and 5 of /sys/block/vda/stat). */
    private static long guestCompletions(LinuxGuest guest) throws IOException, InterruptedException {
        return Long.parseLong(guest.check("read r a b c w rest </sys/block/vda/stat; echo $((r + w))").trim());
    }

    /**
     * The guest flushes its disk ({@code fdatasync} of /dev/vda: a virtio
     * flush, so librbd's writeback cache reaches the cluster) and checksums
     * all of it with O_DIRECT; {@code rbd export} of the image must have the
     * same checksum.
     */
    private void assertGuestViewEqualsRbdExport(LinuxGuest guest, String image, Path tmp, BlockdevDaemon.Kind kind)
            throws Exception {
        guest.check("sync -d /dev/vda");
        String inGuest = guestMd5(guest, 0, DISK_MIB);
        Path out = tmp.resolve(image + ".export");
        long t0 = System.nanoTime();
        cluster.rbd("export", "--no-progress", "rbd/" + image, out.toString());
        logs.note(String.format("%s: rbd export of %d MiB: %.1f s", kind, DISK_MIB, (System.nanoTime() - t0) / 1e9));
        assertEquals((long) DISK_MIB << 20, Files.size(out), "rbd export's size");
        assertEquals(inGuest, md5(out), "the guest's /dev/vda and rbd export of " + image);
    }

    /** Write requests the guest's block layer completed on vda (field 5 of /sys/block/vda/stat). */
    private static long guestWrites(LinuxGuest guest) throws IOException, InterruptedException {
        return Long.parseLong(guest.check("read a b c d w rest </sys/block/vda/stat; echo $w").trim());
    }

    /**
     * A guest command that returns (bounded) once more than {@code n} writes
     * completed on vda; it re-reads the counter with shell built-ins only.
     */
    private static String writesPast(long n) {
        return "timeout 120 sh -c 'until read a b c d w rest </sys/block/vda/stat && [ $w -gt " + n
                + " ]; do :; done'";
    }

    /** MD5 of {@code mib} MiB of /dev/vda from {@code offsetMiB}, read in the guest with O_DIRECT. */
    private static String guestMd5(LinuxGuest guest, int offsetMiB, int mib) throws IOException, InterruptedException {
        String out = guest.check("dd if=/dev/vda iflag=direct bs=1M skip=" + offsetMiB + " count=" + mib
                + " 2>/dev/null | md5sum");
        Matcher m = MD5.matcher(out);
        assertTrue(m.find(), "md5sum printed: " + out);
        return m.group(1);
    }

    private static String md5(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("MD5");
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0;) {
                md.update(buf, 0, n);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
