package io.vblk.vhost;

import io.vblk.aio.EventNotifier;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioRing;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A seeded, reproducible randomized vhost-user front-end against a read-only
 * {@code vblk serve} export (in-process, over a real socket): sessions of
 * random messages — any request code, right-sized payloads with edge values
 * or random sizes, any flags, descriptors of every kind (eventfds blocking,
 * saturated or not, pipes, sockets, short and long memfds, /dev/zero) — some
 * after a valid set-up that starts a ring whose descriptors and avail ring
 * the fuzzer then fills with garbage and kicks; sessions end by closing,
 * sometimes in the middle of a message.
 *
 * <p>Counted: messages sent; hangs (a reply the protocol owes that does not
 * come within {@link #REPLY_BOUND}, or a fresh connection not answered
 * within it after a session); crashes (a failure recorded by the server's
 * main loop, or the JVM dying, which ends the run). At the end the image must
 * be byte-for-byte unchanged. Run {@link #main} for N minutes (not in CI); a
 * short seeded run is {@code VhostUserFuzzTest}.
 */
final class VhostUserFuzzer {
    static final Duration REPLY_BOUND = Duration.ofSeconds(10);
    private static final int[] KNOWN = new int[40];

    static {
        for (int i = 0; i < KNOWN.length; i++) {
            KNOWN[i] = i + 1;
        }
    }

    /** What a run found. */
    record Result(long seed, long sessions, long messages, long hangs, long crashes, boolean imageUnchanged,
                  long refusals, Duration took, Duration slowestReply, String slowestRequest) {
        @Override
        public String toString() {
            return String.format("seed %d: %d sessions, %d messages sent, %d refused by the back-end, hangs %d, "
                    + "crashes %d, image %s, %d s; slowest reply %d ms (to %s)", seed, sessions, messages, refusals,
                    hangs, crashes, imageUnchanged ? "unchanged" : "CHANGED", took.toSeconds(),
                    slowestReply.toMillis(), slowestRequest);
        }
    }

    private final SplittableRandom rnd;
    private final long seed;
    private final HostileHarness h;
    private final RamRegion ram = RamRegion.memfd("fuzz-ram", 0, TestFrontend.RAM);
    private final List<Integer> spare = new ArrayList<>();
    private long messages;
    private final java.util.ArrayDeque<String> recent = new java.util.ArrayDeque<>();
    private long hangs;
    private long sessions;
    /** The longest wait for a reply the protocol owes (from the end of the send), and to what. */
    private long slowestNanos;
    private String slowest = "-";

    VhostUserFuzzer(long seed, HostileHarness h) {
        this.seed = seed;
        this.rnd = new SplittableRandom(seed);
        this.h = h;
    }

    /** Runs sessions until {@code maxMessages} were sent or {@code until} (nanoTime) passed. */
    Result run(long maxMessages, long untilNanos) throws IOException {
        long t0 = System.nanoTime();
        byte[] before = Files.readAllBytes(h.image);
        while (messages < maxMessages && System.nanoTime() < untilNanos) {
            session();
            sessions++;
            if (!probe()) {
                hangs++;
                break; // a wedged server answers nothing more: stop and report
            }
        }
        boolean same = Arrays.equals(before, Files.readAllBytes(h.image));
        long crashes = h.server.mainLoop().failures().size();
        return new Result(seed, sessions, messages, hangs, crashes, same, h.server.server().device().refusals(),
                Duration.ofNanos(System.nanoTime() - t0), Duration.ofNanos(slowestNanos), slowest);
    }

    /** A fresh connection is answered: the server is not wedged by the last session. */
    private boolean probe() {
        try (VhostUserClient c = VhostUserClient.connect(h.sock, REPLY_BOUND)) {
            return c.getU64(VhostUserProtocol.GET_QUEUE_NUM) == 1;
        } catch (VhostUserException e) {
            System.err.println("fuzz: probe after session " + sessions + " failed: " + e.getMessage());
            return false;
        }
    }

    private void session() {
        recent.clear();
        try (UnixSocket s = UnixSocket.connect(h.sock)) {
            s.setTimeouts(REPLY_BOUND, REPLY_BOUND);
            boolean ringUp = rnd.nextInt(3) == 0 && validSetup(s);
            int n = 1 + rnd.nextInt(40);
            for (int i = 0; i < n; i++) {
                if (ringUp && rnd.nextInt(4) == 0) {
                    scribbleRing();
                    recent.addLast("(ring scribbled and kicked)");
                    continue;
                }
                if (rnd.nextInt(60) == 0) {
                    byte[] partial = new byte[1 + rnd.nextInt(11)];
                    s.send(partial, partial.length, null); // then the session ends mid-message
                    messages++;
                    return;
                }
                if (!send(s, randomMessage())) {
                    return; // the back-end closed the connection (or a hang was counted)
                }
            }
        } catch (VhostUserException e) {
            // the back-end dropped us mid-session: fine, the probe decides
        } finally {
            closeSpare();
        }
    }

    /** Sends one message; waits for the reply the protocol owes. False when the connection is over. */
    private boolean send(UnixSocket s, VhostUserMsg m) {
        messages++;
        if (recent.size() == 30) {
            recent.removeFirst();
        }
        recent.addLast(m.toString());
        try {
            m.write(s);
        } catch (VhostUserException e) {
            return false;
        }
        boolean owed = m.needReply() || VhostUserProtocol.hasReply(m.request());
        if (!owed) {
            return true;
        }
        long sent = System.nanoTime();
        long gcBefore = gcMillis();
        try {
            VhostUserMsg r = VhostUserMsg.read(s);
            long took = System.nanoTime() - sent;
            if (took > slowestNanos) {
                slowestNanos = took;
                slowest = m + " (session " + sessions + ")";
            }
            if (r == null) {
                return false;
            }
            r.closeFds();
            return true;
        } catch (VhostUserException e) {
            if (e.getMessage().contains("receive timeout")) {
                hangs++;
                System.err.println("fuzz: no reply to " + m + " within " + REPLY_BOUND + " (session " + sessions + "); "
                        + "the JVM spent " + (gcMillis() - gcBefore) + " ms of it collecting garbage");
                dumpHang();
            }
            return false;
        }
    }

    /**
     * Milliseconds the JVM has spent collecting garbage so far: the server
     * runs in this JVM, so a long pause while a reply is awaited is a stall
     * of the server that the socket's timeout (a kernel clock) still counts.
     */
    private static long gcMillis() {
        long t = 0;
        for (java.lang.management.GarbageCollectorMXBean b : java.lang.management.ManagementFactory
                .getGarbageCollectorMXBeans()) {
            t += Math.max(0, b.getCollectionTime());
        }
        return t;
    }

    /** What a hang looked like: the session's last messages, the server's state, every thread's stack. */
    private void dumpHang() {
        System.err.println("fuzz: the session's last messages:");
        for (String r : recent) {
            System.err.println("  " + r);
        }
        System.err.println(h.server.describe());
        for (var e : Thread.getAllStackTraces().entrySet()) {
            System.err.println("thread " + e.getKey().getName() + ":");
            for (StackTraceElement f : e.getValue()) {
                System.err.println("    at " + f);
            }
        }
    }

    /** The QEMU-like set-up up to a running ring 0 over the fuzzer's RAM; false if the back-end refused it. */
    private boolean validSetup(UnixSocket s) {
        int need = VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_NEED_REPLY;
        long u = ram.hostAddress();
        for (long a = TestFrontend.DESC; a < TestFrontend.HDR; a += 8) {
            io.vblk.virtio.HostMemory.putLongLE(u + a, 0); // a fresh ring: what earlier sessions scribbled is gone
        }
        EventNotifier kick = new EventNotifier();
        EventNotifier call = new EventNotifier();
        spare.add(kick.fd());
        spare.add(call.fd());
        kicks = kick;
        List<VhostUserMsg> setup = List.of(
                VhostUserMsg.ofU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, need,
                        VhostUserBlkFrontend.WANTED_PROTOCOL_FEATURES),
                VhostUserMsg.of(VhostUserProtocol.SET_OWNER, need),
                HostileFrontendTest.addMemReg(0, TestFrontend.RAM, u, 0, ram.fd()),
                VhostUserMsg.ofU64(VhostUserProtocol.SET_FEATURES, need, VirtioFeatures.VERSION_1
                        | VirtioFeatures.INDIRECT_DESC | VirtioFeatures.EVENT_IDX | VhostUserProtocol.F_PROTOCOL_FEATURES),
                VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, need, 0, TestFrontend.QSIZE),
                VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_BASE, need, 0, 0),
                HostileFrontendTest.vringAddr(0, 0, u + TestFrontend.DESC, u + TestFrontend.USED,
                        u + TestFrontend.AVAIL),
                VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_CALL, need, 0, call.fd()),
                VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_KICK, need, 0, kick.fd()),
                VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_ENABLE, need, 0, 1));
        for (VhostUserMsg m : setup) {
            if (!send(s, m)) {
                return false;
            }
        }
        return true;
    }

    private EventNotifier kicks;

    /** Garbage descriptors and avail entries in ring 0, then a kick. */
    private void scribbleRing() {
        long base = ram.hostAddress();
        int k = 1 + rnd.nextInt(4);
        for (int i = 0; i < k; i++) {
            long d = base + TestFrontend.DESC + 16L * rnd.nextInt(TestFrontend.QSIZE);
            io.vblk.virtio.HostMemory.putLongLE(d, pick(addresses()));
            io.vblk.virtio.HostMemory.putIntLE(d + 8, (int) pick(new long[] {0, 1, 16, 512, 4096, 0xffff_ffffL,
                rnd.nextInt(8192)}));
            io.vblk.virtio.HostMemory.putShortLE(d + 12, (short) rnd.nextInt(8));
            io.vblk.virtio.HostMemory.putShortLE(d + 14, (short) (rnd.nextInt(4) == 0 ? rnd.nextInt(0x10000)
                    : rnd.nextInt(TestFrontend.QSIZE)));
        }
        long avail = base + TestFrontend.AVAIL;
        int idx = io.vblk.virtio.HostMemory.getU16LE(avail + VirtioRing.AVAIL_IDX);
        io.vblk.virtio.HostMemory.putShortLE(avail + VirtioRing.AVAIL_RING + 2L * (idx % TestFrontend.QSIZE),
                (short) (rnd.nextInt(8) == 0 ? rnd.nextInt(0x10000) : rnd.nextInt(TestFrontend.QSIZE)));
        io.vblk.virtio.HostMemory.putShortLE(avail + VirtioRing.AVAIL_IDX,
                (short) (rnd.nextInt(40) == 0 ? rnd.nextInt(0x10000) : idx + 1));
        messages++;
        if (kicks != null && !kicks.isClosed()) {
            kicks.set();
        }
    }

    private long[] addresses() {
        long u = ram.hostAddress();
        return new long[] {0, 8, 4096, TestFrontend.HDR, TestFrontend.DATA, TestFrontend.RAM - 16, TestFrontend.RAM,
            -1L, -4096L, Long.MIN_VALUE, 1L << 32, u, u + TestFrontend.DESC, u + TestFrontend.RAM,
            rnd.nextLong()};
    }

    private long pick(long[] values) {
        return values[rnd.nextInt(values.length)];
    }

    private VhostUserMsg randomMessage() {
        int request = rnd.nextInt(12) == 0 ? rnd.nextInt(200) - 20 : KNOWN[rnd.nextInt(KNOWN.length)];
        int flags = rnd.nextInt(10) == 0 ? rnd.nextInt() : VhostUserProtocol.VERSION
                | (rnd.nextBoolean() ? VhostUserProtocol.FLAG_NEED_REPLY : 0);
        int size = rnd.nextInt(3) == 0 ? rnd.nextInt(300) : naturalSize(request);
        byte[] p = new byte[size];
        ByteBuffer b = ByteBuffer.wrap(p).order(ByteOrder.LITTLE_ENDIAN);
        long[] values = {0, 1, 2, 8, 16, 255, 256, 0x100, 0x8000, 0xffff, 0x10000, 1L << 31, 0xffff_ffffL,
            TestFrontend.RAM, -1L, Long.MIN_VALUE};
        for (int o = 0; o + 8 <= size; o += 8) {
            b.putLong(o, rnd.nextInt(3) == 0 ? pick(addresses()) : pick(values));
        }
        if (size >= 8 && (request == VhostUserProtocol.SET_MEM_TABLE) && rnd.nextBoolean()) {
            b.putInt(0, rnd.nextInt(10)); // a plausible region count
        }
        if (size >= 8 && rnd.nextBoolean()) {
            b.putInt(0, rnd.nextInt(3)); // a plausible ring index
        }
        return new VhostUserMsg(request, flags, p, randomFds());
    }

    private int naturalSize(int request) {
        switch (request) {
            case VhostUserProtocol.SET_VRING_ADDR:
                return VhostUserProtocol.ADDR_SIZE;
            case VhostUserProtocol.ADD_MEM_REG:
            case VhostUserProtocol.REM_MEM_REG:
                return VhostUserProtocol.MEM_REG_SIZE;
            case VhostUserProtocol.SET_MEM_TABLE:
                return 8 + 32 * (1 + rnd.nextInt(3));
            case VhostUserProtocol.GET_CONFIG:
            case VhostUserProtocol.SET_CONFIG:
                return 12 + rnd.nextInt(64);
            case VhostUserProtocol.SET_LOG_BASE:
            case VhostUserProtocol.GET_INFLIGHT_FD:
            case VhostUserProtocol.SET_INFLIGHT_FD:
                return 16 + 8 * rnd.nextInt(3);
            default:
                return 8;
        }
    }

    /** 0 to 3 descriptors of random kinds; the fuzzer closes its copies after the session. */
    private int[] randomFds() {
        int n = rnd.nextInt(4) == 0 ? 0 : rnd.nextInt(3) == 0 ? 1 + rnd.nextInt(3) : 1;
        if (rnd.nextInt(3) == 0) {
            n = 0;
        }
        int[] fds = new int[n];
        for (int i = 0; i < n; i++) {
            int fd;
            switch (rnd.nextInt(8)) {
                case 0 -> fd = new EventNotifier().fd();
                case 1 -> fd = Fds.blockingEventfd();
                case 2 -> fd = Fds.saturatedEventfd();
                case 3 -> {
                    int[] p = Fds.pipe();
                    spare.add(p[0]);
                    fd = p[1];
                }
                case 4 -> fd = Fds.memfd(pick(new long[] {0, 4096, 65536, TestFrontend.RAM}));
                case 5 -> fd = Fds.devZero();
                case 6 -> fd = ram.fd() >= 0 ? dup(ram.fd()) : Fds.devZero();
                default -> {
                    UnixSocket[] pair = UnixSocket.pair();
                    spare.add(pair[0].fd());
                    fd = pair[1].fd();
                }
            }
            spare.add(fd);
            fds[i] = fd;
        }
        return fds;
    }

    private static int dup(int fd) {
        return Fds.fcntl(fd, 1030 /* F_DUPFD_CLOEXEC */, 0);
    }

    private void closeSpare() {
        for (int fd : spare) {
            io.vblk.aio.LibC.close(fd);
        }
        spare.clear();
        kicks = null;
    }

    void close() {
        ram.close();
    }

    /** {@code VhostUserFuzzer SEED MINUTES DIR}: runs against a read-only export of a fresh image in DIR. */
    public static void main(String[] args) throws Exception {
        long seed = Long.parseLong(args[0]);
        double minutes = Double.parseDouble(args[1]);
        Path dir = Files.createDirectories(Path.of(args[2]));
        try (HostileHarness h = new HostileHarness(dir, true, false)) {
            VhostUserFuzzer f = new VhostUserFuzzer(seed, h);
            Result r = f.run(Long.MAX_VALUE, System.nanoTime() + (long) (minutes * 60e9));
            f.close();
            System.out.println("fuzz: " + r);
            System.exit(r.hangs() == 0 && r.crashes() == 0 && r.imageUnchanged() ? 0 : 1);
        }
    }
}
