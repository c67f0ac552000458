package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.vblk.block.BlkDebugDriver;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestWorkload;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.IoPattern;
import io.vblk.guest.LatencySink;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.guest.MachinePlatform;
import io.vblk.testkit.Repeats;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * The dataplane's transitions under guest I/O (issue 5): no request is lost
 * or answered twice, every read returns what was written, nothing hangs.
 */
@Tag("concurrency")
class DataplaneStormTest {
    private static final Duration BOUND = Duration.ofSeconds(120);

    private static void finish(Machine m, AtomicBoolean stop, LinuxGuest.Run run) {
        GuestRuns.finish(m, stop, run, BOUND);
        assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
    }

    /** 10,000 stop/start cycles ({@link Repeats}: fewer per run in a soak) while 4 vCPUs keep 32 verified requests in flight over 2 IOThreads. */
    @Test
    void tenThousandStopStartCyclesUnderVerifiedIo(@TempDir Path dir) throws Exception {
        DiskSpec disk = DiskSpec.image(GuestRuns.blankImage(dir, 64L << 20), "raw").withQueues(4).withIothreads(List.of("io0", "io1"));
        try (Machine m = Machine.start(MachineConfig.of(4, 2, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 4, 256, true);
            AtomicBoolean stop = new AtomicBoolean();
            LinuxGuest.Run run = g.start(new GuestWorkload.Spec(8, 4096, IoPattern.parse("randrw"), true, false),
                    stop::get, null, 3);
            long before = m.disk(0).dataplane().starts();
            int cycles = Repeats.of(10_000);
            for (int i = 0; i < cycles; i++) {
                m.restartDataplane(0);
            }
            long during = run.completed();
            finish(m, stop, run);
            assertEquals(cycles, m.disk(0).dataplane().starts() - before);
            assertTrue(during > cycles / 10, "I/O kept flowing through the cycles: " + during);
        }
    }

    /** 1,000 resets ({@link Repeats}: fewer per run in a soak) during I/O, each followed by a fresh boot (the MBR checked), driver re-initialisation and a verified read. */
    @Test
    void thousandResetsDuringIoEachFollowedByAVerifiedRead(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("disk.raw"), 32L << 20);
        byte[] pattern = new byte[4096];
        new Random(9).nextBytes(pattern);
        long patternSector = 4096;
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.seek(patternSector * 512);
            f.write(pattern);
        }
        DiskSpec disk = DiskSpec.image(img, "raw").withIothreads(List.of("io0"));
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            assertEquals(BootVerdict.MBR_OK, m.boot().verdict());
            int resets = Repeats.of(1000);
            for (int i = 0; i < resets; i++) {
                LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
                byte[] got = m.await("verified read", m.runOnVcpu(0, "read the pattern",
                        p -> readOnce(p, g.driver().queue(0), patternSector, 4096)), BOUND);
                assertArrayEquals(pattern, got, "cycle " + i);
                CompletableFuture<Void> busy = new CompletableFuture<>();
                AtomicLong seen = new AtomicLong();
                LatencySink[] sinks = {ns -> {
                    if (seen.incrementAndGet() == 16) {
                        busy.complete(null);
                    }
                }};
                LinuxGuest.Run run = g.start(new GuestWorkload.Spec(8, 4096, IoPattern.parse("randread"), false, false),
                        () -> false, sinks, i);
                m.await("I/O under way", busy, BOUND);
                assertEquals(BootVerdict.MBR_OK, m.awaitBoot(m.systemReset()).verdict(), "boot after reset " + i);
                assertTrue(run.done().get(0).isDone(), "the reset ended the guest's program");
            }
            assertEquals(resets, m.resets());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }

    /** Queues moved between IOThreads and to the main loop while verified I/O runs. */
    @Test
    void movingTheDiskBetweenIothreadsAndTheMainLoopUnderLoad(@TempDir Path dir) throws Exception {
        DiskSpec disk = DiskSpec.image(GuestRuns.blankImage(dir, 64L << 20), "raw").withQueues(2).withIothreads(List.of("io0"));
        try (Machine m = Machine.start(MachineConfig.of(2, 2, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 2, 256, true);
            AtomicBoolean stop = new AtomicBoolean();
            LinuxGuest.Run run = g.start(new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false),
                    stop::get, null, 4);
            List<List<String>> places = List.of(List.of("io1"), List.of("io0", "io1"), List.of(), List.of("io0"),
                    List.of("io1", "io0"), List.of());
            long last = 0;
            for (int i = 0; i < 300; i++) {
                List<String> to = places.get(i % places.size());
                m.moveDisk(0, to);
                assertEquals(!to.isEmpty(), m.disk(0).dataplane().isStarted());
                if (!to.isEmpty()) {
                    assertEquals(to.get(0), m.disk(0).backend().context().name(), "the backend follows queue 0");
                } else {
                    assertEquals("main-loop", m.disk(0).backend().context().name());
                }
                last = run.completed();
            }
            finish(m, stop, run);
            assertTrue(last > 300, "I/O kept flowing: " + last);
        }
    }

    /**
     * A kick that arrives while the dataplane switches to the main loop is not
     * lost. Request 1 is held at a blkdebug suspension, so the stop waits in its
     * drain; during that drain the guest kicks request 2 (the device pops
     * nothing while drained); then request 1 is released. Request 2 must be
     * served, in main-loop mode, without another kick.
     */
    @Test
    void aKickDuringTheSwitchToTheMainLoopIsNotLost() throws Exception {
        DiskSpec disk = DiskSpec.nullDevice(16L << 20).withIothreads(List.of("io0")).withErrorInjection();
        try (Machine m = Machine.start(MachineConfig.of(1, 1, List.of(disk)))) {
            m.boot();
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            BlkQueue q = g.driver().queue(0);
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension hold = dbg.suspend("request-1", BlkDebugDriver.Op.READ, 0, 4096);
            CompletableFuture<Void> draining = new CompletableFuture<>();
            m.disk(0).device().setObserver(new RequestObserver() {
                @Override
                public void drainedBegin() {
                    draining.complete(null);
                }
            });
            m.await("submit request 1", m.runOnVcpu(0, "request 1", p -> {
                q.bindTo(p);
                q.allocateSlots(2, 4096);
                q.submit(0, VirtioBlkAbi.T_IN, 0, 4096);
                q.kick();
                return null;
            }), BOUND);
            m.await("request 1 held in the backend", hold.reached(), BOUND);
            CompletableFuture<Void> stopping = m.mainLoop().run("dataplane stop", () -> m.disk(0).dataplane().stopIoeventfd());
            m.await("the stop draining", draining, BOUND);
            m.await("kick request 2 during the switch", m.runOnVcpu(0, "request 2", p -> {
                q.submit(1, VirtioBlkAbi.T_IN, 8, 4096);
                q.kick();
                return null;
            }), BOUND);
            assertFalse(stopping.isDone(), "the stop still waits for request 1");
            hold.resume();
            m.await("the stop", stopping, BOUND);
            int[] done = m.await("both completions", m.runOnVcpu(0, "reap", p -> {
                int[] status = {-1, -1};
                InterruptLine irq = p.interrupts();
                while (status[0] < 0 || status[1] < 0) {
                    int slot = q.reap();
                    if (slot >= 0) {
                        status[slot] = q.status(slot);
                    } else if (q.enableInterrupts()) {
                        irq.await(-1);
                    }
                }
                return status;
            }), BOUND);
            assertArrayEquals(new int[] {VirtioBlkAbi.S_OK, VirtioBlkAbi.S_OK}, done);
            assertFalse(m.disk(0).dataplane().isStarted());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
        }
    }

    /** One read on the calling vCPU, waiting for its interrupt; returns the data. */
    static byte[] readOnce(MachinePlatform p, BlkQueue q, long sector, int bytes) {
        q.bindTo(p);
        q.allocateSlots(1, bytes);
        q.submit(0, VirtioBlkAbi.T_IN, sector, bytes);
        q.kick();
        InterruptLine irq = p.interrupts();
        int slot;
        while ((slot = q.reap()) < 0) {
            if (q.enableInterrupts()) {
                irq.await(-1);
            }
        }
        if (q.status(slot) != VirtioBlkAbi.S_OK) {
            throw new IllegalStateException("read failed with status " + q.status(slot));
        }
        byte[] data = new byte[bytes];
        p.ramRead(q.buffer(slot), data, 0, bytes);
        return data;
    }
}
