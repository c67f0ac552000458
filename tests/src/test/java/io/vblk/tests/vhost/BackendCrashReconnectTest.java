package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.EventNotifier;
import io.vblk.testkit.BlkHeaders;
import io.vblk.testkit.GuestRing;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.vhost.UnixSocket;
import io.vblk.vhost.VhostUserClient;
import io.vblk.vhost.VhostUserMsg;
import io.vblk.vhost.VhostUserProtocol;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A {@code vblk serve} child process killed with SIGKILL under a stream of
 * writes, restarted with the same arguments: a front-end that kept the
 * inflight region (GET_INFLIGHT_FD) hands it to the new back-end, which
 * resubmits what was in flight; every write completes without an I/O error
 * and the image holds every write. The first back-end holds its last write
 * taken and in flight (the test switch {@code --x-hold-after-take}), so at
 * least one kill certainly leaves a request to resubmit; the other kills fall
 * wherever they fall. And SIGTERM ends a server whose
 * front-end left a message half-sent.
 */
class BackendCrashReconnectTest {
    private static final Duration BOUND = Duration.ofSeconds(60);
    private static final int QSIZE = 64;
    private static final int DEPTH = 16;
    private static final long DESC = 0x1000;
    private static final long AVAIL = 0x2000;
    private static final long USED = 0x3000;
    private static final long HDR = 0x10000;
    private static final long DATA = 0x100000;
    private static final long RAM = 4L << 20;
    private static final int REQUESTS_PER_LIFE = 300;

    private final RamRegion ram = RamRegion.memfd("crash-test-ram", 0, RAM);
    private final GuestMemory mem = new GuestMemory(ram);
    private final GuestRing ring = GuestRing.at(mem, QSIZE, DESC, AVAIL, USED);
    private final EventNotifier kick = new EventNotifier();
    private final EventNotifier call = new EventNotifier();
    private final int[] headToRequest = new int[QSIZE];
    private int inflightFd = -1;
    private long inflightSize;
    private int submitted;
    private int completed;

    /** {@code holdWrite} > 0: the test switch holds that write (counted from 1) taken and in flight. */
    private Process serve(Path img, Path sock, Path log, long holdWrite) throws IOException {
        java.util.List<String> cmd = new java.util.ArrayList<>(Tools.javaCommand("io.vblk.cli.Main", "serve",
                "--socket", sock.toString(), "--image", img.toString()));
        if (holdWrite > 0) {
            cmd.add("--x-hold-after-take");
            cmd.add(Long.toString(holdWrite));
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        new SerialLog(log).await("listening on " + sock, 1, BOUND, () -> "");
        return p;
    }

    /** QEMU's vhost_user_blk_start after a reconnect: the kept inflight region, ring base = used.idx. */
    private VhostUserClient attach(Path sock) {
        VhostUserClient c = VhostUserClient.connect(sock, BOUND);
        c.getU64(VhostUserProtocol.GET_FEATURES);
        long pf = c.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES);
        long inflight = VhostUserProtocol.pf(VhostUserProtocol.PF_INFLIGHT_SHMFD);
        assertTrue((pf & inflight) != 0, "INFLIGHT_SHMFD offered");
        c.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, pf & (inflight
                | VhostUserProtocol.pf(VhostUserProtocol.PF_REPLY_ACK) | VhostUserProtocol.pf(VhostUserProtocol.PF_CONFIG)
                | VhostUserProtocol.pf(VhostUserProtocol.PF_CONFIGURE_MEM_SLOTS)));
        c.setReplyAck(true);
        c.request(VhostUserProtocol.SET_OWNER);
        if (inflightFd < 0) {
            VhostUserMsg r = c.requestReply(new VhostUserMsg(VhostUserProtocol.GET_INFLIGHT_FD,
                    VhostUserProtocol.VERSION, inflightPayload(0), null));
            inflightSize = r.u64(0);
            inflightFd = r.takeFd(0);
            assertTrue(inflightFd >= 0, "the region's descriptor came with the reply");
        }
        c.send(new VhostUserMsg(VhostUserProtocol.SET_INFLIGHT_FD, VhostUserProtocol.VERSION
                | VhostUserProtocol.FLAG_NEED_REPLY, inflightPayload(inflightSize), new int[] {inflightFd}));
        c.addMemReg(0, RAM, ram.hostAddress(), 0, ram.fd());
        c.setU64(VhostUserProtocol.SET_FEATURES, VirtioFeatures.VERSION_1 | VhostUserProtocol.F_PROTOCOL_FEATURES);
        c.setState(VhostUserProtocol.SET_VRING_NUM, 0, QSIZE);
        c.setState(VhostUserProtocol.SET_VRING_BASE, 0, ring.usedIdx());
        c.setVringAddr(0, ram.hostAddress() + DESC, ram.hostAddress() + USED, ram.hostAddress() + AVAIL);
        c.setU64(VhostUserProtocol.SET_VRING_CALL, 0, call.fd());
        c.setU64(VhostUserProtocol.SET_VRING_KICK, 0, kick.fd());
        c.setState(VhostUserProtocol.SET_VRING_ENABLE, 0, 1);
        return c;
    }

    private static byte[] inflightPayload(long size) {
        byte[] b = new byte[24];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, size).putShort(16, (short) 1)
                .putShort(18, (short) QSIZE);
        return b;
    }

    /** Write request {@code n}: 4 KiB of the pattern n at sector 8n. */
    private void submit() {
        int n = submitted++;
        int slot = n % DEPTH;
        long h = HDR + 32L * slot;
        long d = DATA + 4096L * slot;
        BlkHeaders.writeOuthdr(mem, h, VirtioBlkAbi.T_OUT, 8L * n);
        mem.writeU8(h + VirtioBlkAbi.OUTHDR_SIZE, BlkHeaders.STATUS_UNSET);
        for (int i = 0; i < 4096; i += 8) {
            mem.writeU64(d + i, 0xC0DE_0000_0000L + n);
        }
        int head = ring.add(new Buf(h, VirtioBlkAbi.OUTHDR_SIZE, false), new Buf(d, 4096, false),
                new Buf(h + VirtioBlkAbi.OUTHDR_SIZE, 1, true));
        headToRequest[head] = n;
        ring.publish();
        kick.set();
    }

    /** Reaps completions; every one must be a success. */
    private void reap() {
        GuestRing.Used u;
        while ((u = ring.pollUsed()) != null) {
            int n = headToRequest[u.id()];
            int status = mem.readU8(HDR + 32L * (n % DEPTH) + VirtioBlkAbi.OUTHDR_SIZE);
            assertEquals(VirtioBlkAbi.S_OK, status, "write " + n + " completed with an error");
            completed++;
        }
    }

    private void awaitCompleted(int n) {
        long deadline = System.nanoTime() + BOUND.toNanos();
        while (completed < n) {
            assertTrue(System.nanoTime() < deadline, "only " + completed + " of " + n + " writes completed");
            reap();
            Thread.onSpinWait();
        }
    }

    /** Descriptors the killed back-end left marked in flight (the spec's DescStateSplit.inflight bytes). */
    private int markedInflight() {
        try (RamRegion r = RamRegion.mapShared(0, inflightSize, inflightFd, 0)) {
            int n = 0;
            for (int i = 0; i < QSIZE; i++) {
                n += io.vblk.virtio.HostMemory.getU8(r.hostAddress() + 16 + 16L * i) != 0 ? 1 : 0;
            }
            return n;
        }
    }

    @Test
    void aBackEndKilledUnderWritesIsRestartedAndResubmitsWhatWasInFlight(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(16L << 20);
        }
        Path sock = dir.resolve("s.sock");
        Process p = null;
        int lives = 5;
        int resubmitted = 0;
        int held = 0;
        try {
            for (int life = 0; life < lives; life++) {
                Path log = dir.resolve("serve-" + life + ".out");
                // the first life holds its last write in flight (a fresh back-end counts only this life's
                // writes), so its kill certainly leaves one to resubmit; the others die wherever they are
                boolean hold = life == 0;
                p = serve(img, sock, log, hold ? REQUESTS_PER_LIFE : 0);
                try (VhostUserClient c = attach(sock)) {
                    int target = submitted + REQUESTS_PER_LIFE;
                    while (submitted < target) {
                        reap();
                        if (submitted - completed < DEPTH) {
                            submit();
                        } else {
                            Thread.onSpinWait();
                        }
                    }
                    if (hold) {
                        new SerialLog(log).await("holding write request " + REQUESTS_PER_LIFE, 1, BOUND,
                                () -> "the back-end did not hold its last write");
                    }
                    if (life < lives - 1) {
                        p.destroyForcibly(); // SIGKILL with up to DEPTH writes outstanding
                        p.waitFor();
                        reap();
                        int left = markedInflight(); // what the next back-end finds in the region
                        if (hold) {
                            assertTrue(left >= 1, "life " + life + ": the held write is marked in flight");
                            held++;
                        }
                        resubmitted += left;
                    } else {
                        awaitCompleted(submitted);
                    }
                }
            }
            assertEquals(submitted, completed, "every write completed, none with an error");
            assertTrue(held == 1 && resubmitted >= held, "the held kills left writes in flight for the next "
                    + "back-end to resubmit: " + held + " held, " + resubmitted + " resubmitted");
        } finally {
            Tools.stop(p, Duration.ofSeconds(30));
            io.vblk.aio.LibC.close(inflightFd);
        }
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            ByteBuffer b = ByteBuffer.allocate(4096).order(ByteOrder.LITTLE_ENDIAN);
            for (int n = 0; n < submitted; n++) {
                b.clear();
                ch.read(b, 4096L * n);
                for (int i = 0; i < 4096; i += 8) {
                    assertEquals(0xC0DE_0000_0000L + n, b.getLong(i), "write " + n + " at byte " + i);
                }
            }
        }
        System.out.printf("crash/reconnect: %d writes over %d back-end lives, %d left in flight by SIGKILL%n",
                submitted, lives, resubmitted);
    }

    /** SIGTERM while a front-end has sent half a header and another waits to be accepted: the server exits. */
    @Test
    void sigtermEndsAServerWhoseFrontEndLeftAMessageHalfSent(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.raw");
        try (RandomAccessFile f = new RandomAccessFile(img.toFile(), "rw")) {
            f.setLength(1L << 20);
        }
        Path sock = dir.resolve("s.sock");
        Path log = dir.resolve("serve.out");
        Process p = serve(img, sock, log, 0);
        try (UnixSocket a = UnixSocket.connect(sock); UnixSocket b = UnixSocket.connect(sock)) {
            a.send(new byte[5], 5, null);
            new SerialLog(log).await("front-end connected", 1, BOUND, () -> "");
            long t0 = System.nanoTime();
            int rc = Tools.stop(p, Duration.ofSeconds(30));
            long ms = (System.nanoTime() - t0) / 1_000_000;
            assertEquals(143, rc, "ended by SIGTERM (not SIGKILL after the grace period): " + Tools.read(log));
            assertTrue(Tools.read(log).contains("vblk serve: stopped"), Tools.read(log));
            System.out.printf("SIGTERM with a half-sent message: exited in %d ms%n", ms);
        } finally {
            Tools.kill(p);
        }
    }

    @org.junit.jupiter.api.AfterEach
    void release() {
        kick.close();
        call.close();
        ram.close();
    }
}
