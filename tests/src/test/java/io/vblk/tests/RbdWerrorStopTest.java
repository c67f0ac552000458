package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockBackend;
import io.vblk.block.ErrorPolicy;
import io.vblk.block.IoStatus;
import io.vblk.block.rbd.CephCluster;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
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
 * Issue 25's error-policy acceptance in vblk's own machine: a disk on RBD
 * with {@code werror=stop,rerror=stop} and a short
 * {@code rados_osd_op_timeout}; the one-node cluster's BlueStore OSD is
 * SIGKILLed under the guest's verified I/O. librbd fails the requests in
 * flight with ETIMEDOUT, the backend keeps them and the machine stops
 * (QEMU's BLOCK_IO_ERROR + STOP: here {@link Machine#nextPause()} and the
 * backend's I/O status); the guest sees no error. The OSD restarts on its
 * data, {@code cont} resubmits the kept requests, they complete, the guest's
 * verified I/O carries on, and {@code rbd export} (another librbd client)
 * holds exactly what the guest was last told it wrote, sector by sector.
 */
@Tag("rbd")
class RbdWerrorStopTest {
    /** Ceph writes on a loaded 2-core machine take seconds; a restarted OSD peers in seconds too. */
    private static final Duration BOUND = Duration.ofSeconds(180);
    /** Short enough for the test, long enough for a loaded BlueStore OSD's slowest write. */
    private static final int OSD_OP_TIMEOUT_S = 10;
    private static final int DISK_MIB = 16;
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

    @Test
    void anOsdKilledMidIoStopsTheMachineAndContAfterItsRestartLosesNothing(@TempDir Path dir) throws Exception {
        cluster.rbd("create", "--size", DISK_MIB + "M", "rbd/werror");
        // rbd_cache off: every acknowledged write is in the OSD, so the export must hold it
        Path image = Path.of(cluster.filename("werror") + ":rados_osd_op_timeout=" + OSD_OP_TIMEOUT_S
                + ":rbd_cache=false");
        DiskSpec disk = DiskSpec.image(image, "raw").withIothreads(List.of("io0"))
                .withErrorPolicy(ErrorPolicy.STOP, ErrorPolicy.STOP);
        GuestWorkload w;
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            GuestProgress progress = new GuestProgress();
            AtomicBoolean stop = new AtomicBoolean();
            LinuxGuest.Run run = g.start(new GuestWorkload.Spec(32, 4096, IoPattern.parse("randrw"), true, false),
                    stop::get, new LatencySink[] {progress}, 25);
            w = run.workloads().get(0);
            m.await("the guest's I/O flowing on RBD", progress.after(300), BOUND);

            CompletableFuture<Void> paused = m.nextPause();
            long killed = System.nanoTime();
            cluster.killOsd();
            m.await("the machine stopping on the requests the dead OSD failed", paused, BOUND);
            double stopS = (System.nanoTime() - killed) / 1e9;
            BlockBackend blk = m.disk(0).backend();
            assertTrue(m.isPaused(), "the machine stopped");
            assertEquals(IoStatus.FAILED, blk.ioStatus(), "the backend records the failure (info block's io-status)");
            int parked = blk.stoppedRequests();
            assertTrue(parked > 0, "the failed requests are kept for cont");
            assertTrue(stopS >= OSD_OP_TIMEOUT_S - 1, "the requests failed by rados_osd_op_timeout, after "
                    + stopS + " s");
            assertEquals(0, w.stats.errors, "the guest saw no error: " + w.stats.firstProblem);
            long frozen = progress.count();

            long restarted = System.nanoTime();
            long oldPid = cluster.osdPid();
            cluster.restartOsd();
            assertTrue(cluster.osdPid() != oldPid, "a new OSD process serves the pool");
            double restartS = (System.nanoTime() - restarted) / 1e9;
            assertEquals(frozen, progress.count(), "no guest request completed while the machine was stopped");
            assertEquals(parked, blk.stoppedRequests(), "the kept requests wait for cont, not for the OSD");

            CompletableFuture<Void> pausedAgain = m.nextPause();
            m.resume();
            assertEquals(IoStatus.OK, blk.ioStatus(), "cont clears the I/O status");
            m.await("the resubmitted requests and more completing after cont", progress.after(parked + 300L), BOUND);
            assertEquals(0, blk.stoppedRequests(), "every kept request was resubmitted");
            assertFalse(pausedAgain.isDone(), "the resubmitted requests did not fail again");
            stop.set(true);
            for (CompletableFuture<Void> f : run.done()) {
                m.await("the guest's workload draining", f, BOUND);
            }
            assertNull(run.firstProblem(), "every read matched what the guest wrote, no error: " + run.firstProblem());
            assertEquals(0, w.stats.errors);
            assertEquals(0, w.stats.mismatches);
            System.out.printf("RbdWerrorStopTest: machine stopped %.1f s after the kill with %d requests kept; "
                    + "OSD restarted and pool active in %.1f s; %d guest requests in all%n", stopS, parked, restartS,
                    w.stats.completed);
        } // closing the machine closes the image (rbd_close)
        Path export = dir.resolve("werror.raw");
        cluster.rbd("export", "--no-progress", "rbd/werror", export.toString());
        assertEquals((long) DISK_MIB << 20, Files.size(export));
        assertExportHoldsWhatTheGuestWrote(export, w);
    }

    /**
     * Every sector of the export holds what the guest's verify mode last
     * wrote there (its LBA, the write's generation and their xor), or zeroes
     * where it never wrote: a write acknowledged to the guest and lost at the
     * kill, or an old generation where a resubmitted write should be, fails.
     */
    private static void assertExportHoldsWhatTheGuestWrote(Path export, GuestWorkload w) throws IOException {
        ByteBuffer sector = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
        long written = 0;
        try (InputStream in = Files.newInputStream(export)) {
            for (long lba = 0; ; lba++) {
                sector.clear();
                int n = in.readNBytes(sector.array(), 0, 512);
                if (n == 0) {
                    break;
                }
                assertEquals(512, n);
                long tag = w.expectedTag(lba);
                if (tag < 0) {
                    continue; // outside the workload's area
                }
                long gotLba = sector.getLong(0);
                long gotTag = sector.getLong(8);
                long gotXor = sector.getLong(504);
                if (tag == 0) {
                    assertTrue(gotLba == 0 && gotTag == 0 && gotXor == 0, "sector " + lba
                            + " was never written by the guest but holds lba=" + gotLba + " gen=" + gotTag);
                } else {
                    written++;
                    assertTrue(gotLba == lba && gotTag == tag && gotXor == (lba ^ tag), "sector " + lba
                            + ": rbd export holds lba=" + gotLba + " gen=" + gotTag + ", the guest last wrote gen="
                            + tag);
                }
            }
        }
        assertTrue(written > 0, "the guest wrote something to compare");
    }
}
