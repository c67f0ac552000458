package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.Errno;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.ErrorPolicy;
import io.vblk.block.IoStatus;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.guest.MachinePlatform;
import io.vblk.guest.VcpuStoppedException;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The machine's control surface end to end: guest-triggered reset, stop/cont, and werror=stop (issue 6). */
@Tag("concurrency")
class MachineControlTest {
    private static final Duration BOUND = Duration.ofSeconds(60);

    @Test
    void theGuestResetsTheMachineThroughTheResetControlPort(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("d.raw"), 16L << 20);
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(DiskSpec.image(img, "raw").withIothreads(List.of("io0")))))) {
            assertEquals(BootVerdict.MBR_OK, m.boot().verdict());
            CompletableFuture<Object> guest = m.runOnVcpu(0, "reset", p -> {
                p.out(MachinePlatform.RESET_CONTROL_PORT, 1, 0x6);
                return "not reached";
            });
            CompletionException e = org.junit.jupiter.api.Assertions.assertThrows(CompletionException.class, guest::join);
            assertTrue(e.getCause() instanceof VcpuStoppedException, e.toString());
            CompletableFuture<BootVerdict> reboot = m.lastGuestResetBoot();
            assertEquals(BootVerdict.MBR_OK, m.awaitBoot(reboot).verdict());
            assertEquals(1, m.resets());
        }
    }

    @Test
    void stopParksTheVcpusAndContResumesVerifiedIo(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32L << 20);
        }
        DiskSpec disk = DiskSpec.image(img, "raw").withQueues(2).withIothreads(List.of("io0", "io1"));
        try (Machine m = Machine.start(MachineConfig.of(2, 2, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 2, 256, true);
            GuestProgress progress = new GuestProgress();
            AtomicBoolean stop = new AtomicBoolean();
            LinuxGuest.Run run = g.start(new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false),
                    stop::get, new LatencySink[] {progress, null}, 8);
            for (int cycle = 0; cycle < 20; cycle++) {
                m.await("I/O flowing", progress.after(50), BOUND);
                m.pause();
                assertTrue(m.isPaused());
                assertTrue(m.vcpu(0).isQuiescent() && m.vcpu(1).isQuiescent(), "vCPUs parked");
                assertFalse(m.disk(0).dataplane().isStarted(), "the dataplane stopped");
                assertEquals(0, m.disk(0).device().requestsInFlight(), "nothing in flight while stopped");
                long frozen = progress.count();
                m.await("round trip", m.iothread("io0").context().run("tick", () -> { }), BOUND);
                assertEquals(frozen, progress.count(), "no guest progress while stopped");
                m.resume();
                assertTrue(m.disk(0).dataplane().isStarted());
            }
            stop.set(true);
            for (CompletableFuture<Void> f : run.done()) {
                m.await("workload", f, BOUND);
            }
            assertNull(run.firstProblem(), run.firstProblem());
        }
    }

    @Test
    void aWriteErrorUnderWerrorStopPausesTheMachineAndContResubmitsIt(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(32L << 20);
        }
        DiskSpec disk = DiskSpec.image(img, "raw").withIothreads(List.of("io0")).withErrorInjection()
                .withErrorPolicy(ErrorPolicy.REPORT, ErrorPolicy.STOP);
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            GuestProgress progress = new GuestProgress();
            AtomicBoolean stop = new AtomicBoolean();
            CompletableFuture<Void> paused = m.nextPause();
            BlkDebugDriver.Rule rule = dbg.injectError(BlkDebugDriver.Op.WRITE, 0, -1, Errno.EIO, 200, true);
            LinuxGuest.Run run = g.start(new GuestWorkload.Spec(8, 4096, IoPattern.parse("randrw"), true, false),
                    stop::get, new LatencySink[] {progress}, 12);
            m.await("the machine pausing on the write error", paused, BOUND);
            assertEquals(1, rule.fired());
            assertEquals(IoStatus.FAILED, m.disk(0).backend().ioStatus());
            assertEquals(1, m.disk(0).backend().stoppedRequests(), "the failed write is kept");
            m.resume();
            assertEquals(IoStatus.OK, m.disk(0).backend().ioStatus());
            m.await("I/O after cont", progress.after(500), BOUND);
            stop.set(true);
            for (CompletableFuture<Void> f : run.done()) {
                m.await("workload", f, BOUND);
            }
            assertNull(run.firstProblem(), "the guest never saw the error and every read matched: " + run.firstProblem());
            assertEquals(0, run.workloads().get(0).stats.errors);
        }
    }
}
