package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.RandomAccessFile;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import io.vblk.cli.Main;
import io.vblk.firmware.BootVerdict;
import io.vblk.guest.BlkQueue;
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
import io.vblk.vhost.VhostUserBlkServer;
import io.vblk.vhost.VhostUserEvents;
import io.vblk.virtio.blk.VirtioBlkAbi;
import picocli.CommandLine;

/**
 * The simulated machine's vhost-user-blk front-end (firmware and Linux-like
 * driver unchanged) against an in-process {@code vblk serve}: the back-end is
 * the same VirtioBlk and dataplane, behind a UNIX socket.
 */
@Tag("concurrency")
class SimulatedMachineOverVblkServeTest {
    private static final Duration BOUND = Duration.ofSeconds(60);

    private static Path blank(Path p, long size) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
        return p;
    }

    /** Back-end events as a queue a test waits on. */
    private static final class Events implements VhostUserEvents {
        final LinkedBlockingQueue<String> q = new LinkedBlockingQueue<>();

        @Override
        public void connected(int pid) {
            q.add("connected");
        }

        @Override
        public void disconnected(String why) {
            q.add("disconnected: " + why);
        }

        @Override
        public void ringsStarted(List<Integer> rings) {
            q.add("started " + rings);
        }

        @Override
        public void ringsStopped(List<Integer> rings) {
            q.add("stopped " + rings);
        }

        @Override
        public void refused(String request, String why) {
            q.add("refused " + request + ": " + why);
        }

        String await(String prefix, VhostUserBlkServer srv) throws InterruptedException {
            long deadline = System.nanoTime() + BOUND.toNanos();
            for (;;) {
                String e = q.poll(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (e == null) {
                    throw srv.mainLoop().watchdog(BOUND).hang("back-end event '" + prefix + "'");
                }
                assertFalse(e.startsWith("refused"), e);
                if (e.startsWith(prefix)) {
                    return e;
                }
            }
        }
    }

    @Test
    void firmwareBootsAndBootsAgainAfterSystemReset(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("vblk.sock");
        Events ev = new Events();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev);
             Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
            ev.await("connected", srv);
            BootReport r = m.boot();
            assertEquals(BootVerdict.MBR_OK, r.verdict(), String.join("\n", r.console()));
            assertTrue(r.console().contains("vblk-bios: partition 1: type 0x83 active start 2048 sectors 129024"),
                    r.console().toString());
            ev.await("started [0]", srv);
            BootReport again = m.awaitBoot(m.systemReset());
            assertEquals(BootVerdict.MBR_OK, again.verdict(), String.join("\n", again.console()));
            ev.await("stopped [0]", srv);
            ev.await("started [0]", srv);
            assertTrue(m.disk(0).vhostUser().starts() >= 2);
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    @Test
    void linuxDriverVerifiedIoOverTwoQueuesOnTwoIothreadsWithPauseAndReset(@TempDir Path dir) throws Exception {
        Path img = blank(dir.resolve("disk.raw"), 32L << 20);
        Path sock = dir.resolve("vblk.sock");
        Events ev = new Events();
        VhostUserBlkServer.Options o = VhostUserBlkServer.Options.image(sock, img, "raw").withQueues(2)
                .withIothreads(2);
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(o, VhostUserBlkServer.DEFAULT_OPENER, ev);
             Machine m = Machine.start(MachineConfig.of(2, 0, List.of(DiskSpec.vhostUser(sock).withQueues(2))))) {
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.boot().verdict(), "a blank disk has no boot signature");
            LinuxGuest g = LinuxGuest.probe(m, 0, 2, 256, true);
            assertEquals(2, g.driver().numQueues());
            ev.await("started [0, 1]", srv);
            GuestWorkload.Spec spec = new GuestWorkload.Spec(16, 4096, IoPattern.parse("randrw"), true, false);
            AtomicBoolean stop = new AtomicBoolean();
            GuestProgress progress = new GuestProgress();
            LinuxGuest.Run run = g.start(spec, stop::get, new LatencySink[] {progress, progress}, 7);
            m.await("3000 guest requests", progress.reach(3000), BOUND);
            m.pause(); // GET_VRING_BASE on both rings: every request answered before the rings stop
            ev.await("stopped [0, 1]", srv);
            assertFalse(srv.server().device().isRunning());
            assertEquals(0, srv.device().requestsInFlight(), srv.describe());
            long atPause = progress.count();
            m.resume();
            ev.await("started [0, 1]", srv);
            m.await("3000 more guest requests after resume", progress.reach(atPause + 3000), BOUND);
            GuestRuns.finish(m, stop, run, BOUND);
            assertEquals(2, m.await("one request per queue, then its interrupt", g.interruptOnEveryQueue(BOUND.dividedBy(2)), BOUND),
                    "completions arrive by MSI-X through the call descriptors");
            assertEquals(BootVerdict.NO_BOOT_SIGNATURE, m.awaitBoot(m.systemReset()).verdict());
            assertTrue(m.mainLoop().failures().isEmpty(), m.mainLoop().failures().toString());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    @Test
    void vblkBootWithVhostUserOption(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("vblk.sock");
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"))) {
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(new PrintWriter(out));
            cl.setErr(new PrintWriter(err));
            int rc = cl.execute("boot", "--vhost-user", sock.toString(), "--resets", "3", "--quiet");
            assertEquals(0, rc, out + "\n" + err);
            assertTrue(out.toString().contains("4 (all MBR OK)"), out.toString());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    @Test
    void vblkBootWithoutABackendSaysSo(@TempDir Path dir) {
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setErr(new PrintWriter(err));
        cl.setExecutionExceptionHandler((ex, cmd, parsed) -> {
            cmd.getErr().println("vblk: " + ex.getMessage());
            return Main.EXIT_FAILED;
        });
        int rc = cl.execute("boot", "--vhost-user", dir.resolve("nobody.sock").toString(), "--quiet");
        assertEquals(Main.EXIT_FAILED, rc);
        assertTrue(err.toString().contains("is a vhost-user back-end listening there?"), err.toString());
    }

    /**
     * A front-end that disappears mid-I/O (its socket closed under in-flight
     * writes) loses nothing the back-end acknowledged: every write the guest
     * saw complete is on the image once the back-end has noticed.
     */
    @Test
    void frontEndVanishingMidWriteLosesNoAcknowledgedWrite(@TempDir Path dir) throws Exception {
        Path img = blank(dir.resolve("disk.raw"), 16L << 20);
        Path sock = dir.resolve("vblk.sock");
        Events ev = new Events();
        Set<Long> acked = ConcurrentHashMap.newKeySet();
        CompletableFuture<Void> enough = new CompletableFuture<>();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev)) {
            try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(DiskSpec.vhostUser(sock))))) {
                m.boot();
                LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
                BlkQueue q = g.driver().queue(0);
                CompletableFuture<Void> writer = m.runOnVcpu(0, "sequential writer", p -> {
                    int slots = 8;
                    q.allocateSlots(slots, 512);
                    long[] lba = new long[slots];
                    long next = 0;
                    for (int s = 0; s < slots; s++) {
                        lba[s] = next++;
                        p.ramWrite64(q.buffer(s), 0x5eed0000L + lba[s]);
                        q.submit(s, VirtioBlkAbi.T_OUT, lba[s], 512);
                    }
                    q.kick();
                    q.disableInterrupts();
                    for (;;) { // polled completions; ends when the machine stops this vCPU
                        int s = q.reap();
                        if (s < 0) {
                            p.delayMicros(0);
                            continue;
                        }
                        if (q.status(s) == VirtioBlkAbi.S_OK) {
                            acked.add(lba[s]);
                            if (acked.size() >= 2000) {
                                enough.complete(null);
                            }
                        }
                        lba[s] = next++ % 30000;
                        p.ramWrite64(q.buffer(s), 0x5eed0000L + lba[s]);
                        q.submit(s, VirtioBlkAbi.T_OUT, lba[s], 512);
                        q.kick();
                    }
                });
                writer.whenComplete((v, e) -> enough.completeExceptionally(
                        e != null ? e : new IllegalStateException("the writer ended")));
                m.await("2000 acknowledged writes", enough, BOUND);
                m.disk(0).vhostUser().client().close(); // the front-end vanishes, writes in flight
                ev.await("disconnected", srv);
            }
            assertEquals(0, srv.device().requestsInFlight(), srv.describe());
            assertTrue(acked.size() >= 2000);
            try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
                ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                for (long lba : acked) {
                    b.clear();
                    ch.read(b, lba * 512);
                    assertEquals(0x5eed0000L + lba, b.getLong(0), "acknowledged write of sector " + lba + " lost");
                }
            }
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    /** {@code vblk bench --vhost-user}: the same guest driver measures this back-end; counts land in the JSON. */
    @Test
    void vblkBenchWithVhostUserOption(@TempDir Path dir) throws Exception {
        Path img = DefaultDisk.create(dir.resolve("default.raw"), DefaultDisk.DEFAULT_SIZE);
        Path sock = dir.resolve("vblk.sock");
        Path json = dir.resolve("bench.json");
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"))) {
            StringWriter out = new StringWriter();
            StringWriter err = new StringWriter();
            CommandLine cl = new CommandLine(new Main());
            cl.setOut(new PrintWriter(out));
            cl.setErr(new PrintWriter(err));
            int rc = cl.execute("bench", "--vhost-user", sock.toString(), "--runtime", "1s", "--ramp", "200ms",
                    "--qd", "8", "--queues", "1", "--quiet", "--json", json.toString());
            assertEquals(0, rc, out + "\n" + err);
            String j = java.nio.file.Files.readString(json);
            assertTrue(j.contains("\"errors\": 0"), j);
            assertTrue(!j.contains("\"requests\": 0,"), j);
            int refused = cl.execute("bench", "--vhost-user", sock.toString(), "--backend", "file");
            assertEquals(Main.EXIT_USAGE, refused);
            assertTrue(err.toString().contains("--backend does not apply with --vhost-user"), err.toString());
        }
    }
}
