package io.vblk.nbd;

import static io.vblk.nbd.NbdProto.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlockNode;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The NBD server over real UNIX sockets with a byte-level client: pipelined
 * requests, structured and simple replies, block status, and the bad-client
 * cases (out-of-range, read-only, unknown commands and flags, bad magic,
 * oversized payloads, a client vanishing mid-write), each checked for the
 * spec's error, an intact image, and other connections still served.
 */
class NbdServerTest {
    private static final Duration DEADLINE = Duration.ofSeconds(90);
    private static final int MIB = 1 << 20;
    private static final int SIZE = 8 * MIB;

    /** An 8 MiB raw image whose 4 KiB block i is filled with (byte) i. */
    static Path patterned(Path dir) throws Exception {
        Path p = dir.resolve("disk.raw");
        byte[] all = new byte[SIZE];
        for (int i = 0; i < SIZE; i++) {
            all[i] = (byte) (i >>> 12);
        }
        Files.write(p, all);
        return p;
    }

    private static byte[] block(long offset, int len) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) ((offset + i) >>> 12);
        }
        return b;
    }

    @Test
    void pipelinedReadsAreAllAnsweredWithTheirOwnData(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", true);
            env.export("d", n, false);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("d", true, false)) {
                    assertEquals(SIZE, c.size);
                    assertTrue((c.transmissionFlags & FLAG_READ_ONLY) != 0, "a read-only export says so");
                    assertTrue((c.transmissionFlags & FLAG_SEND_DF) != 0, "DF with structured replies");
                    assertEquals(0, c.transmissionFlags & FLAG_SEND_WRITE_ZEROES, "no write flags when read-only");
                    int count = 48;
                    Map<Long, Long> offsets = new HashMap<>();
                    for (int i = 0; i < count; i++) {
                        long off = (long) ((i * 7919) % (SIZE / 4096)) * 4096 + (i % 3) * 100;
                        int len = 4096 * (1 + i % 16);
                        offsets.put(1000L + i, off);
                        c.request(CMD_READ, 0, 1000L + i, off, len, null); // all sent before any reply is read
                    }
                    for (int i = 0; i < count; i++) {
                        NbdTestClient.Chunk ch = c.chunk();
                        assertEquals(REPLY_TYPE_OFFSET_DATA, ch.type());
                        assertEquals(REPLY_FLAG_DONE, ch.flags());
                        Long off = offsets.remove(ch.handle());
                        assertTrue(off != null, "reply to an unknown or already answered handle " + ch.handle());
                        ByteBuffer b = ByteBuffer.wrap(ch.data());
                        assertEquals(off, b.getLong());
                        byte[] data = Arrays.copyOfRange(ch.data(), 8, ch.data().length);
                        assertArrayEquals(block(off, data.length), data, "data of handle " + ch.handle());
                    }
                    assertTrue(offsets.isEmpty());
                }
            });
        }
    }

    @Test
    void writesWithFuaReachTheImageAndReadBackWithSimpleReplies(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("w", n, true);
            byte[] payload = new byte[3 * 65536 + 17];
            Arrays.fill(payload, (byte) 0xab);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("w", false, false)) {
                    int want = FLAG_HAS_FLAGS | FLAG_SEND_FLUSH | FLAG_SEND_FUA | FLAG_SEND_TRIM | FLAG_SEND_WRITE_ZEROES;
                    assertEquals(want, c.transmissionFlags & want, "writable export flags");
                    c.request(CMD_WRITE, CMD_FLAG_FUA, 1, MIB + 5, payload.length, payload);
                    assertArrayEquals(new long[] {0, 1}, c.simpleReply());
                    c.request(CMD_READ, 0, 2, MIB, payload.length + 10, null);
                    assertArrayEquals(new long[] {0, 2}, c.simpleReply());
                    byte[] back = c.readFully(payload.length + 10);
                    assertArrayEquals(block(MIB, 5), Arrays.copyOfRange(back, 0, 5), "bytes before the write");
                    assertArrayEquals(payload, Arrays.copyOfRange(back, 5, 5 + payload.length));
                    c.request(CMD_WRITE_ZEROES, CMD_FLAG_NO_HOLE, 3, 0, 8192, null);
                    assertArrayEquals(new long[] {0, 3}, c.simpleReply());
                    c.request(CMD_FLUSH, 0, 4, 0, 0, null);
                    assertArrayEquals(new long[] {0, 4}, c.simpleReply());
                    c.request(CMD_DISC, 0, 5, 0, 0, null);
                    assertTrue(c.closedByServer(), "DISC ends the connection");
                }
            });
            byte[] disk = Files.readAllBytes(img);
            assertArrayEquals(payload, Arrays.copyOfRange(disk, MIB + 5, MIB + 5 + payload.length));
            assertArrayEquals(new byte[8192], Arrays.copyOfRange(disk, 0, 8192), "write-zeroes reached the file");
            assertArrayEquals(block(8192, 4096), Arrays.copyOfRange(disk, 8192, 8192 + 4096), "nothing else changed");
        }
    }

    @Test
    void badRequestsGetTheSpecErrorsAndTheConnectionAndImageStayIntact(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        byte[] before = Files.readAllBytes(img);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("w", n, true);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("w", false, false)) {
                    c.request(CMD_READ, 0, 1, SIZE - 4096, 8192, null);
                    assertArrayEquals(new long[] {EINVAL, 1}, c.simpleReply(), "read past the end");
                    byte[] p = new byte[8192];
                    Arrays.fill(p, (byte) 0x5a);
                    c.request(CMD_WRITE, 0, 2, SIZE - 4096, 8192, p);
                    assertArrayEquals(new long[] {ENOSPC, 2}, c.simpleReply(), "write past the end");
                    c.request(CMD_WRITE, 0, 3, -4096L, 4096, Arrays.copyOf(p, 4096));
                    assertArrayEquals(new long[] {ENOSPC, 3}, c.simpleReply(), "offset beyond 2^63");
                    c.request(CMD_TRIM, 0, 4, SIZE, 1, null);
                    assertArrayEquals(new long[] {EINVAL, 4}, c.simpleReply(), "trim past the end");
                    c.request(9, 0, 5, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 5}, c.simpleReply(), "unknown command");
                    c.request(CMD_CACHE, 0, 6, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 6}, c.simpleReply(), "CACHE is not advertised");
                    c.request(CMD_READ, CMD_FLAG_FUA, 7, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 7}, c.simpleReply(), "FUA on a read");
                    c.request(CMD_READ, CMD_FLAG_DF, 8, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 8}, c.simpleReply(), "DF without structured replies");
                    c.request(CMD_BLOCK_STATUS, 0, 9, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 9}, c.simpleReply(), "block status without a context");
                    c.request(CMD_READ, 0, 10, 0, MAX_PAYLOAD + 1, null);
                    assertArrayEquals(new long[] {EINVAL, 10}, c.simpleReply(), "read over the maximum payload");
                    c.request(CMD_WRITE_ZEROES, CMD_FLAG_DF, 11, 0, 512, null);
                    assertArrayEquals(new long[] {EINVAL, 11}, c.simpleReply(), "DF on write-zeroes");
                    c.request(CMD_READ, 0, 12, 4096, 4096, null);
                    assertArrayEquals(new long[] {0, 12}, c.simpleReply(), "the connection still serves");
                    assertArrayEquals(block(4096, 4096), c.readFully(4096));
                }
            });
        }
        assertArrayEquals(before, Files.readAllBytes(img), "no refused request touched the image");
    }

    @Test
    void aReadOnlyExportRefusesWritesWithEpermAndSkipsTheirPayload(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        byte[] before = Files.readAllBytes(img);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("ro", n, false);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("ro", true, false)) {
                    byte[] p = new byte[65536];
                    Arrays.fill(p, (byte) 0x77);
                    c.request(CMD_WRITE, 0, 1, 0, p.length, p);
                    assertArrayEquals(new long[] {EPERM, 1}, c.simpleReply());
                    c.request(CMD_WRITE_ZEROES, 0, 2, 0, 4096, null);
                    assertArrayEquals(new long[] {EPERM, 2}, c.simpleReply());
                    c.request(CMD_TRIM, 0, 3, 0, 4096, null);
                    assertArrayEquals(new long[] {EPERM, 3}, c.simpleReply());
                    c.request(CMD_READ, 0, 4, 0, 4096, null);
                    NbdTestClient.Chunk ch = c.chunk();
                    assertEquals(4, ch.handle(), "the write's payload was skipped: the next header parsed");
                    assertArrayEquals(block(0, 4096), Arrays.copyOfRange(ch.data(), 8, ch.data().length));
                    c.request(CMD_READ, 0, 5, SIZE, 1, null);
                    NbdTestClient.Chunk err = c.chunk();
                    assertEquals(REPLY_TYPE_ERROR, err.type(), "a structured read fails with an error chunk");
                    assertEquals(EINVAL, err.error());
                }
            });
        }
        assertArrayEquals(before, Files.readAllBytes(img));
    }

    @Test
    void aClientBreakingTheProtocolIsClosedWhileOthersAreServed(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        byte[] before = Files.readAllBytes(img);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("w", n, true);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient good = new NbdTestClient(env.socket).connect("w", false, false)) {
                    try (NbdTestClient bad = new NbdTestClient(env.socket).connect("w", false, false)) {
                        bad.out.writeInt(0xdeadbeef);
                        bad.out.write(new byte[24]);
                        bad.out.flush();
                        assertTrue(bad.closedByServer(), "a wrong request magic closes the connection");
                    }
                    try (NbdTestClient big = new NbdTestClient(env.socket).connect("w", false, false)) {
                        big.request(CMD_WRITE, 0, 1, 0, MAX_PAYLOAD + 1, new byte[4096]);
                        assertTrue(big.closedByServer(), "a write payload over the maximum closes the connection");
                    }
                    try (NbdTestClient gone = new NbdTestClient(env.socket).connect("w", false, false)) {
                        byte[] half = new byte[MIB / 2];
                        Arrays.fill(half, (byte) 0xee);
                        gone.out.writeInt(REQUEST_MAGIC);
                        gone.out.writeShort(0);
                        gone.out.writeShort(CMD_WRITE);
                        gone.out.writeLong(1);
                        gone.out.writeLong(0);
                        gone.out.writeInt(MIB);
                        gone.out.write(half); // and vanishes before the rest
                        gone.out.flush();
                    }
                    try (NbdTestClient garbage = new NbdTestClient(env.socket)) {
                        garbage.greet();
                        garbage.out.writeLong(0x1122334455667788L); // not IHAVEOPT
                        garbage.out.write(new byte[8]);
                        garbage.out.flush();
                        assertTrue(garbage.closedByServer(), "a malformed handshake closes the connection");
                    }
                    good.request(CMD_READ, 0, 2, 0, MIB, null);
                    assertArrayEquals(new long[] {0, 2}, good.simpleReply(), "the well-behaved client is still served");
                    assertArrayEquals(block(0, MIB), good.readFully(MIB), "the half-sent write never reached the disk");
                }
            });
        }
        assertArrayEquals(before, Files.readAllBytes(img));
    }

    @Test
    void removingAnExportInUseIsRefusedSafelyAndDropsItsClientsWhenHard(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("w", n, true);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("w", false, false)) {
                    c.request(CMD_FLUSH, 0, 1, 0, 0, null);
                    assertArrayEquals(new long[] {0, 1}, c.simpleReply()); // it is in transmission now
                    NbdException e = assertThrows(NbdException.class,
                            () -> env.main("del", () -> env.server.removeExport("w", false)));
                    assertTrue(e.getMessage().contains("in use"), e.getMessage());
                    env.remove("w", true);
                    assertTrue(c.closedByServer(), "a hard removal closes the export's connections");
                    assertEquals(0, (int) env.main("count", () -> env.server.exports().size()));
                    assertEquals(0, (int) env.main("backends", () -> env.layer.backends().size()),
                            "the export's backend let go of the node");
                }
                try (NbdTestClient late = new NbdTestClient(env.socket)) {
                    late.greet();
                    late.option(OPT_GO, NbdTestClient.goData("w"));
                    assertEquals(REP_ERR_UNKNOWN, late.optReply(OPT_GO).type(), "a removed export is unknown");
                }
            });
        }
    }

    @Test
    void serverOptionsQemuDoesNotHaveHereAreRefusedClearly(@TempDir Path dir) {
        try (NbdEnv env = new NbdEnv(dir)) {
            Path s2 = dir.resolve("other.sock");
            NbdException tls = assertThrows(NbdException.class, () -> env.main("start",
                    () -> NbdServer.start(env.layer, NbdAddress.unix(s2), 0, "tls0")));
            assertTrue(tls.getMessage().contains("tls-creds"), tls.getMessage());
            NbdException mc = assertThrows(NbdException.class, () -> env.main("start",
                    () -> NbdServer.start(env.layer, NbdAddress.unix(s2), 4, null)));
            assertTrue(mc.getMessage().contains("max-connections"), mc.getMessage());
        }
    }

    @Test
    void tcpListenerOnAKernelChosenPortServes(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", true);
            NbdServer tcp = env.main("start", () -> NbdServer.start(env.layer, NbdAddress.inet("127.0.0.1", 0)));
            try {
                env.main("add", () -> tcp.addExport("t", "tcp export", n, false));
                assertTrue(tcp.port() > 0);
                String out = Tools.ok("qemu-io", "-r", "-f", "raw", "nbd://127.0.0.1:" + tcp.port() + "/t", "-c",
                        "read -P 0x02 8192 4096");
                assertTrue(out.contains("read 4096/4096 bytes"), out);
            } finally {
                env.watchdog().await("stop", env.main("stop", tcp::stop));
            }
        }
    }

    @Test
    void aSilentClientIsDroppedAfterTheHandshakeTimeoutAndOthersAreNot(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", true);
            env.export("d", n, false);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient good = new NbdTestClient(env.socket).connect("d", false, false)) {
                    env.main("timeout", () -> {
                        env.server.setHandshakeTimeout(Duration.ofMillis(300));
                        return null;
                    });
                    try (NbdTestClient silent = new NbdTestClient(env.socket)) {
                        silent.greet(); // and then says nothing
                        silent.out.flush();
                        assertTrue(silent.closedByServer(), "the handshake timer closes a client that never chooses");
                    }
                    good.request(CMD_READ, 0, 1, 0, 4096, null);
                    assertArrayEquals(new long[] {0, 1}, good.simpleReply(), "a client in transmission has no timer");
                    assertArrayEquals(block(0, 4096), good.readFully(4096));
                }
            });
        }
    }

    /**
     * Block status of a qcow2 whose L2 tables are not resident makes the node
     * load them synchronously, polling its context inside the client's fd
     * handler; pipelined reads complete meanwhile. Every reply must still
     * come once, with the right extents and data.
     */
    @Test
    void pipelinedBlockStatusOfAQcow2AndReadsAnswerCorrectly(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("q.qcow2");
        Tools.ok("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img.toString(), "64M");
        java.util.List<String> io = new java.util.ArrayList<>(java.util.List.of("qemu-io", "-f", "qcow2"));
        for (int k = 1; k < 64; k += 2) {
            io.add("-c");
            io.add("write -P 0xaa " + k + "M 64k");
        }
        io.add(img.toString());
        Tools.ok(io.toArray(new String[0]));
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "qcow2", true);
            env.export("q", n, false);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("q", true, true)) {
                    for (int k = 0; k < 64; k++) {
                        c.request(CMD_BLOCK_STATUS, 0, 2L * k, (long) k * MIB, MIB, null);
                        c.request(CMD_READ, 0, 2L * k + 1, (long) k * MIB, 128 * 1024, null);
                    }
                    boolean[] seen = new boolean[128];
                    for (int i = 0; i < 128; i++) {
                        NbdTestClient.Chunk ch = c.chunk();
                        int h = (int) ch.handle();
                        assertTrue(h >= 0 && h < 128 && !seen[h], "handle " + h + " answered once");
                        seen[h] = true;
                        int k = h / 2;
                        boolean data = k % 2 == 1;
                        ByteBuffer b = ByteBuffer.wrap(ch.data());
                        if (h % 2 == 0) {
                            assertEquals(REPLY_TYPE_BLOCK_STATUS, ch.type(), "block status of MiB " + k);
                            assertEquals(META_ID_BASE_ALLOCATION, b.getInt());
                            if (data) {
                                assertEquals(16 + 4, ch.data().length, "two extents at MiB " + k);
                                assertEquals(65536, b.getInt());
                                assertEquals(0, b.getInt(), "data");
                                assertEquals(MIB - 65536, b.getInt());
                                assertEquals(STATE_HOLE | STATE_ZERO, b.getInt());
                            } else {
                                assertEquals(8 + 4, ch.data().length, "one extent at MiB " + k);
                                assertEquals(MIB, b.getInt());
                                assertEquals(STATE_HOLE | STATE_ZERO, b.getInt());
                            }
                        } else {
                            assertEquals(REPLY_TYPE_OFFSET_DATA, ch.type());
                            assertEquals((long) k * MIB, b.getLong());
                            for (int j = 0; j < 128 * 1024; j++) {
                                byte want = data && j < 65536 ? (byte) 0xaa : 0;
                                if (b.get() != want) {
                                    throw new AssertionError("byte " + j + " of MiB " + k);
                                }
                            }
                        }
                    }
                    c.request(CMD_BLOCK_STATUS, CMD_FLAG_REQ_ONE, 500, 0, 4 * MIB, null);
                    NbdTestClient.Chunk one = c.chunk();
                    assertEquals(4 + 8, one.data().length, "REQ_ONE: a single extent");
                }
            });
        }
    }

    /** Seeded garbage from many clients, in the handshake and in transmission: each is closed, none disturbs the rest. */
    @Test
    void garbageFromManyClientsIsClosedAndNeverDisturbsAWellBehavedOne(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        byte[] before = Files.readAllBytes(img);
        long seed = Long.getLong("nbd.garbage.seed", 22L);
        java.util.Random rnd = new java.util.Random(seed);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", false);
            env.export("w", n, true);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient good = new NbdTestClient(env.socket).connect("w", true, false)) {
                    java.util.List<NbdTestClient> bad = new java.util.ArrayList<>();
                    for (int i = 0; i < 16; i++) {
                        NbdTestClient c = new NbdTestClient(env.socket);
                        if (i % 2 == 0) {
                            c.greet(); // garbage as options
                        } else {
                            c.connect("w", i % 4 == 1, false); // garbage as requests
                        }
                        byte[] junk = new byte[1 + rnd.nextInt(8192)];
                        rnd.nextBytes(junk);
                        c.out.write(junk);
                        c.out.flush();
                        bad.add(c);
                    }
                    for (int i = 0; i < bad.size(); i++) {
                        NbdTestClient c = bad.get(i);
                        while (c.in.read() >= 0) {
                            // whatever the server answered before it gave up; it must end with a close
                        }
                        c.close();
                    }
                    good.request(CMD_READ, 0, 9, 3 * 4096, 8192, null);
                    NbdTestClient.Chunk ch = good.chunk();
                    assertEquals(9, ch.handle());
                    assertArrayEquals(block(3 * 4096, 8192), Arrays.copyOfRange(ch.data(), 8, ch.data().length),
                            "seed " + seed);
                }
            });
        }
        assertArrayEquals(before, Files.readAllBytes(img), "garbage never reached the disk (seed " + seed + ")");
    }

    /** A node left in the main loop (no IOThread, as a daemon without iothread= keeps it) is served from there. */
    @Test
    void aNodeInTheMainLoopIsServedFromTheMainLoop(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.main("open", () -> env.layer.openImage("disk0", img, "raw", false));
            try {
                env.export("m", n, true);
                String out = Tools.ok("qemu-io", "-f", "raw", "-c", "write -P 0x66 64k 64k", "-c", "read -P 0x66 64k 64k",
                        "-c", "read -P 0x20 128k 4k", env.uri("m"));
                assertTrue(out.contains("read 65536/65536 bytes") && !out.contains("fail"), out);
            } finally {
                env.remove("m", true);
                env.main("close", () -> {
                    n.unref();
                    return null;
                });
            }
        }
        byte[] disk = Files.readAllBytes(img);
        byte[] want = new byte[65536];
        Arrays.fill(want, (byte) 0x66);
        assertArrayEquals(want, Arrays.copyOfRange(disk, 65536, 131072));
    }

    /**
     * More requests than a connection keeps in flight, whose replies exceed
     * what it queues, sent before any reply is read: reading pauses (in-flight
     * limit, queued-reply limit, a full socket) and resumes as the client
     * reads, and every request is answered once with its data.
     */
    @Test
    void aClientFarAheadOfItsRepliesIsThrottledAndFullyAnswered(@TempDir Path dir) throws Exception {
        Path img = patterned(dir);
        try (NbdEnv env = new NbdEnv(dir)) {
            BlockNode n = env.open("disk0", img, "raw", true);
            env.export("d", n, false);
            assertTimeoutPreemptively(DEADLINE, () -> {
                try (NbdTestClient c = new NbdTestClient(env.socket).connect("d", false, false)) {
                    int count = 3 * NbdClient.MAX_IN_FLIGHT + 100;
                    int len = 256 * 1024; // 292 x 256 KiB: more than MAX_QUEUED_REPLY_BYTES
                    assertTrue((long) count * len > NbdClient.MAX_QUEUED_REPLY_BYTES);
                    for (int i = 0; i < count; i++) {
                        c.request(CMD_READ, 0, i, (long) (i % 32) * len, len, null);
                    }
                    boolean[] seen = new boolean[count];
                    for (int i = 0; i < count; i++) {
                        long[] r = c.simpleReply();
                        assertEquals(0, r[0]);
                        int h = (int) r[1];
                        assertTrue(!seen[h], "handle " + h + " answered twice");
                        seen[h] = true;
                        byte[] data = c.readFully(len);
                        assertArrayEquals(block((long) (h % 32) * len, len), data, "data of handle " + h);
                    }
                }
            });
        }
    }

    static void sparse(Path p, long size) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(p.toFile(), "rw")) {
            f.setLength(size);
        }
    }
}
