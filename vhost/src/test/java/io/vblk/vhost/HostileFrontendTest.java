package io.vblk.vhost;

import static io.vblk.vhost.HostileHarness.BOUND;
import static io.vblk.vhost.HostileHarness.NEED;
import static io.vblk.vhost.HostileHarness.assertAck;
import static io.vblk.vhost.HostileHarness.ask;
import static io.vblk.vhost.HostileHarness.negotiate;
import static io.vblk.vhost.VhostUserProtocol.VERSION;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.EventNotifier;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A vhost-user front-end is untrusted (DESIGN rule 9). Each case sends the
 * hostile bytes over a real socket to an in-process {@code vblk serve} and
 * checks the protocol's answer (a failure ack, an empty reply or a closed
 * connection), the event that names the fault (the same text as the log
 * line), that the next front-end is served, and that the image is unchanged.
 * The four cases that wedged the server before — a kick that blocks, a call
 * that blocks, a payload that never comes, a memory file shorter than its
 * region — are the first four.
 */
@Tag("concurrency")
class HostileFrontendTest {

    // ------------------------------------------------------------------ the four former wedges

    /**
     * A kick descriptor that is a blocking eventfd: the dataplane start reads
     * it to consume a stale kick, which blocked the main loop for good. It is
     * now made non-blocking (and requests through it are served).
     */
    @Test
    void aBlockingKickEventfdIsMadeNonBlocking(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            int kickFd = Fds.blockingEventfd();
            assertFalse(Fds.nonBlocking(kickFd));
            try (TestFrontend fe = new TestFrontend(h.sock, EventNotifier.adopt(kickFd), new EventNotifier())) {
                fe.negotiate();
                fe.addMemory();
                fe.startRing(0, 0);
                h.events.await("started", "[0]");
                assertTrue(Fds.nonBlocking(kickFd), "the back-end set O_NONBLOCK on the shared kick descriptor");
                fe.submit(0, VirtioBlkAbi.T_IN, 7);
                assertTrue(fe.awaitCall(BOUND));
                assertEquals(0xABC00007L, fe.data(0));
            }
            h.assertStillServingAndIntact();
        }
    }

    /**
     * A call descriptor that is a blocking eventfd at its maximum count: the
     * IOThread's signal after a completion blocked, so the ring stop (and the
     * next connection, and SIGTERM) waited forever.
     */
    @Test
    void aSaturatedBlockingCallEventfdNeverBlocksTheIoThread(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            int callFd = Fds.saturatedEventfd();
            try (TestFrontend fe = new TestFrontend(h.sock, new EventNotifier(), EventNotifier.adopt(callFd))) {
                fe.negotiate();
                fe.addMemory();
                fe.startRing(0, 0);
                h.events.await("started", "[0]");
                fe.submit(0, VirtioBlkAbi.T_IN, 3);
                assertTrue(fe.awaitUsed(1, BOUND), "the completion was pushed");
                fe.submit(1, VirtioBlkAbi.T_IN, 4);
                assertTrue(fe.awaitUsed(2, BOUND), "and the IOThread went on serving");
                assertEquals(2, fe.client.getVringBase(0), "GET_VRING_BASE answers: the stop did not wait on the call");
            }
            h.assertStillServingAndIntact();
        }
    }

    /**
     * A header whose payload never comes: the server read it with a blocking
     * receive. It now assembles messages without waiting and drops the
     * front-end at the message deadline; meanwhile the main loop is free (a
     * close, as on SIGTERM, ends the connection at once, not at the deadline).
     */
    @Test
    void aPayloadThatNeverComesIsDroppedWithoutBlockingTheServer(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            try (UnixSocket s = h.raw()) {
                byte[] hdr = header(VhostUserProtocol.SET_VRING_ADDR, NEED, VhostUserProtocol.ADDR_SIZE);
                s.send(hdr, hdr.length, null);
                s.send(new byte[10], 10, null);
                h.dropped("dropped: the front-end sent SET_VRING_ADDR with 10 of its 40 payload bytes and nothing more");
                assertNull(VhostUserMsg.read(s), "the connection is closed");
            }
            h.assertStillServingAndIntact();
        }
        // close (what SIGTERM runs) while a message is incomplete: the main loop is not stuck in a receive
        try (HostileHarness h = new HostileHarness(dir.resolve("2").toFile().mkdirs() ? dir.resolve("2") : dir,
                false)) {
            UnixSocket s = h.raw();
            try {
                byte[] hdr = header(VhostUserProtocol.GET_FEATURES, VERSION, 8);
                s.send(hdr, hdr.length, null);
                h.events.await("connected", "");
                h.server.close();
                String why = h.dropped("");
                assertTrue(why.contains("shutting down"), why + ": ended by the close, not by the message deadline");
            } finally {
                s.close();
            }
        }
    }

    /**
     * A memory file shorter than the region it describes: touching a page past
     * its end raises SIGBUS in the back-end. The size is checked before mmap.
     */
    @Test
    void aMemoryFileShorterThanItsRegionIsRefusedBeforeMapping(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false); UnixSocket s = h.raw()) {
            negotiate(s);
            int fd = Fds.memfd(64 * 1024);
            try {
                long maps = HostileHarness.mappings();
                assertAck(1, s, memTable(new long[][] {{0, 1 << 20, 0x7000_0000_0000L, 0}}, fd));
                h.refused("SIGBUS");
                assertAck(1, s, addMemReg(0, 1 << 20, 0x7000_0000_0000L, 0, fd));
                h.refused("SIGBUS");
                // the offset counts: 64 KiB file, 32 KiB region at offset 48 KiB
                assertAck(1, s, addMemReg(0, 32 * 1024, 0x7000_0000_0000L, 48 * 1024, fd));
                h.refused("SIGBUS");
                assertAck(0, s, addMemReg(0, 64 * 1024, 0x7000_0000_0000L, 0, fd));
                assertTrue(HostileHarness.mappings() <= maps + 1 + 8, "only the accepted region was mapped");
            } finally {
                Fds.close(fd);
            }
        }
        // (a fresh server: the accepted region above is dropped with that connection)
    }

    // ------------------------------------------------------------------ descriptors

    @Test
    void ringDescriptorsThatAreNotEventfdsAreRefused(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            int[] pipe = Fds.pipe();
            UnixSocket[] pair = UnixSocket.pair();
            int mem = Fds.memfd(4096);
            try (UnixSocket s = h.raw()) {
                negotiate(s);
                for (int request : new int[] {VhostUserProtocol.SET_VRING_KICK, VhostUserProtocol.SET_VRING_CALL,
                    VhostUserProtocol.SET_VRING_ERR}) {
                    for (int fd : new int[] {pipe[0], pipe[1], pair[1].fd(), mem}) {
                        assertAck(1, s, VhostUserMsg.ofU64(request, NEED, 0, fd));
                        h.refused("not an eventfd");
                    }
                }
                // missing and extra descriptors
                assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_KICK, NEED, 0));
                h.refused("0 descriptors, expected 1");
                try (EventNotifier a = new EventNotifier(); EventNotifier b = new EventNotifier()) {
                    assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_CALL, NEED, 0, a.fd(), b.fd()));
                    h.refused("2 descriptors, expected 1");
                }
                // the back-end channel must be a socket
                assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_BACKEND_REQ_FD, NEED, 0, pipe[1]));
                h.refused("not a socket");
            } finally {
                Fds.close(pipe[0], pipe[1], mem);
                pair[0].close();
                pair[1].close();
            }
            h.assertStillServingAndIntact();
        }
    }

    /** Regions that cannot be mapped or describe nonsense; each refused, none left mapped. */
    @Test
    void badMemoryRegionsAreRefusedAndLeaveNoMapping(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false); UnixSocket s = h.raw()) {
            negotiate(s);
            int mem = Fds.memfd(1 << 20);
            int[] pipe = Fds.pipe();
            int zero = Fds.devZero();
            UnixSocket[] pair = UnixSocket.pair();
            long u = 0x7000_0000_0000L;
            try {
                long maps = HostileHarness.mappings();
                String[][] cases = {
                    {"zero size", "size must be positive"},
                    {"size 2^63", "size must be positive"},
                    {"gpa wrap", "guest-physical range wraps"},
                    {"uaddr wrap", "front-end address range wraps"},
                    {"unaligned offset", "not page-aligned"},
                    {"offset overflow", "overflows"},
                    {"pipe", "not a memory file"},
                    {"socket", "not a memory file"},
                    {"/dev/zero", "not a memory file"},
                    {"overlap", "overlaps"},
                    {"fd missing", "1 descriptors, expected 2"},
                };
                List<VhostUserMsg> msgs = List.of(
                        memTable(new long[][] {{0, 0, u, 0}}, mem),
                        memTable(new long[][] {{0, Long.MIN_VALUE, u, 0}}, mem),
                        memTable(new long[][] {{-4096, 8192, u, 0}}, mem),
                        memTable(new long[][] {{0, 8192, -4096, 0}}, mem),
                        memTable(new long[][] {{0, 4096, u, 100}}, mem),
                        memTable(new long[][] {{0, 4096, u, Long.MAX_VALUE & ~4095L}}, mem),
                        memTable(new long[][] {{0, 4096, u, 0}}, pipe[0]),
                        memTable(new long[][] {{0, 4096, u, 0}}, pair[1].fd()),
                        memTable(new long[][] {{0, 4096, u, 0}}, zero),
                        memTable(new long[][] {{0, 8192, u, 0}, {4096, 8192, u + 8192, 0}}, mem, mem),
                        memTable(new long[][] {{0, 4096, u, 0}, {8192, 4096, u + 8192, 0}}, mem));
                for (int i = 0; i < cases.length; i++) {
                    assertAck(1, s, msgs.get(i));
                    h.refused(cases[i][1]);
                }
                assertTrue(HostileHarness.mappings() <= maps + 8, "refused regions were unmapped");
            } finally {
                Fds.close(mem, pipe[0], pipe[1], zero);
                pair[0].close();
                pair[1].close();
            }
        }
    }

    /** 1,000 refused tables and 1,000 replaced ones: the mappings and descriptors do not grow. */
    @Test
    void refusedAndReplacedMemoryTablesAreAllUnmapped(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false); UnixSocket s = h.raw()) {
            negotiate(s);
            int mem = Fds.memfd(1 << 20);
            long u = 0x7000_0000_0000L;
            try {
                // warm up: the first mapping and the JIT
                assertAck(0, s, memTable(new long[][] {{0, 1 << 20, u, 0}}, mem));
                long maps = HostileHarness.mappings();
                long fds = openFds();
                for (int i = 0; i < 1000; i++) {
                    // the first region maps, the second overlaps it: the table is refused after one mmap
                    assertAck(1, s, memTable(new long[][] {{0, 1 << 19, u, 0}, {4096, 4096, u + 4096, 4096}},
                            mem, mem));
                    assertAck(0, s, memTable(new long[][] {{(i % 2) * (1L << 30), 1 << 20, u, 0}}, mem));
                }
                long grown = HostileHarness.mappings() - maps;
                assertTrue(grown < 50, "mappings grew by " + grown + " over 1,000 refused and 1,000 replaced tables");
                assertTrue(openFds() - fds < 10, "descriptors grew by " + (openFds() - fds));
            } finally {
                Fds.close(mem);
            }
        }
    }

    // ------------------------------------------------------------------ rings

    @Test
    void ringIndicesSizesAndAddressesAreChecked(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false); UnixSocket s = h.raw();
             Ram ram = new Ram()) {
            negotiate(s);
            long half = TestFrontend.RAM / 2;
            // two regions, contiguous in the front-end's address space
            assertAck(0, s, memTable(new long[][] {{0, half, ram.uaddr(0), 0}, {half, half, ram.uaddr(half), half}},
                    ram.ram.fd(), ram.ram.fd()));
            // indices out of range, for every ring message
            for (int q : new int[] {1, 5, 255, -1}) {
                assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, NEED, q, 16));
                assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_BASE, NEED, q, 0));
                assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_ENABLE, NEED, q, 1));
                assertAck(1, s, vringAddr(q, 0, ram.uaddr(0x1000), ram.uaddr(0x3000), ram.uaddr(0x2000)));
                assertEquals(0, ask(s, VhostUserMsg.ofState(VhostUserProtocol.GET_VRING_BASE, VERSION, q, 0)).size());
                try (EventNotifier e = new EventNotifier()) {
                    assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_KICK, NEED, q & 0xff, e.fd()));
                    assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_CALL, NEED, q & 0xff, e.fd()));
                    assertAck(1, s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_ERR, NEED, q & 0xff, e.fd()));
                }
            }
            h.refused("does not exist");
            // sizes: not a power of two, zero, past the maximum
            for (int n : new int[] {0, 3, 1000, 2048, 32768, 65536, 1 << 30}) {
                assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, NEED, 0, n));
                h.refused("is not a power of two");
            }
            assertAck(0, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, NEED, 0, 16));
            // addresses: outside every region, spanning the two, misaligned, unknown flags
            assertAck(1, s, vringAddr(0, 0, ram.uaddr(TestFrontend.RAM), ram.uaddr(0x3000), ram.uaddr(0x2000)));
            h.refused("descriptor table of 16 entries");
            assertAck(1, s, vringAddr(0, 0, ram.uaddr(0x1000), ram.uaddr(half - 64), ram.uaddr(0x2000)));
            h.refused("used ring of 16 entries");
            assertAck(1, s, vringAddr(0, 0, ram.uaddr(0x1008), ram.uaddr(0x3000), ram.uaddr(0x2000)));
            h.refused("misaligned");
            assertAck(1, s, vringAddr(0, 6, ram.uaddr(0x1000), ram.uaddr(0x3000), ram.uaddr(0x2000)));
            h.refused("unknown address flags");
            assertAck(0, s, vringAddr(0, 0, ram.uaddr(0x1000), ram.uaddr(0x3000), ram.uaddr(0x2000)));
            // base past a 16-bit index, enable neither 0 nor 1
            assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_BASE, NEED, 0, 0x10000));
            assertAck(1, s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_ENABLE, NEED, 0, 2));
        }
        // (the harness's server is closed above; a fresh one checks the next front-end)
    }

    /** Every fixed-size message one byte short and one byte long. */
    @Test
    void payloadSizesThatDisagreeWithTheRequestAreRefused(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false); UnixSocket s = h.raw()) {
            negotiate(s);
            int[][] fixed = {{VhostUserProtocol.SET_FEATURES, 8}, {VhostUserProtocol.SET_PROTOCOL_FEATURES, 8},
                {VhostUserProtocol.SET_VRING_NUM, 8}, {VhostUserProtocol.SET_VRING_BASE, 8},
                {VhostUserProtocol.SET_VRING_ADDR, 40}, {VhostUserProtocol.SET_VRING_ENABLE, 8},
                {VhostUserProtocol.ADD_MEM_REG, 40}, {VhostUserProtocol.REM_MEM_REG, 40}};
            for (int[] f : fixed) {
                for (int size : new int[] {0, f[1] - 1, f[1] + 1}) {
                    assertAck(1, s, new VhostUserMsg(f[0], NEED, new byte[size], null));
                }
            }
            h.refused("payload of");
            assertEquals(0, ask(s, new VhostUserMsg(VhostUserProtocol.GET_VRING_BASE, VERSION, new byte[4], null))
                    .size());
            // SET_MEM_TABLE whose count disagrees with its size; GET_CONFIG whose size field lies
            byte[] t = new byte[8 + 32];
            ByteBuffer.wrap(t).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 2);
            assertAck(1, s, new VhostUserMsg(VhostUserProtocol.SET_MEM_TABLE, NEED, t, null));
            ByteBuffer.wrap(t).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 9);
            assertAck(1, s, new VhostUserMsg(VhostUserProtocol.SET_MEM_TABLE, NEED, t, null));
            byte[] c = new byte[12 + 4];
            ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN).putInt(4, 60);
            assertEquals(0, ask(s, new VhostUserMsg(VhostUserProtocol.GET_CONFIG, VERSION, c, null)).size());
            assertEquals(1, ask(s, VhostUserMsg.of(VhostUserProtocol.GET_QUEUE_NUM, VERSION)).u64(), "in sync");
            h.assertImageUnchanged();
        }
    }

    /** Messages in the wrong state: before SET_OWNER, after RESET_DEVICE, twice, under running rings. */
    @Test
    void messagesInTheWrongStateAreRefusedOrHarmless(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            try (UnixSocket s = h.raw()) {
                for (int r : new int[] {VhostUserProtocol.SET_FEATURES, VhostUserProtocol.SET_VRING_NUM,
                    VhostUserProtocol.SET_VRING_BASE, VhostUserProtocol.SET_VRING_ENABLE}) {
                    assertAck(1, s, VhostUserMsg.ofState(r, NEED, 0, 16));
                    h.refused("before SET_OWNER");
                }
                assertEquals(0, ask(s, VhostUserMsg.ofState(VhostUserProtocol.GET_VRING_BASE, VERSION, 0, 0)).size());
                assertAck(1, s, VhostUserMsg.of(VhostUserProtocol.RESET_DEVICE, NEED));
            }
            h.dropped("");
            try (TestFrontend fe = new TestFrontend(h.sock)) {
                fe.negotiate();
                fe.addMemory();
                fe.startRing(0, 0);
                h.events.await("started", "[0]");
                // configured twice while running: NUM, ADDR and KICK again; the ring restarts and serves
                fe.startRing(0, 0);
                fe.submit(0, VirtioBlkAbi.T_IN, 11);
                assertTrue(fe.awaitCall(BOUND));
                assertEquals(0xABC0000BL, fe.data(0));
                // a memory table while the ring runs: stopped, remapped, restarted where it was
                fe.client.setMemTable(new long[] {0}, new long[] {TestFrontend.RAM}, new long[] {fe.uaddr(0)},
                        new long[] {0}, new int[] {fe.ram.fd()});
                fe.submit(1, VirtioBlkAbi.T_IN, 12);
                assertTrue(fe.awaitCall(BOUND));
                assertEquals(0xABC0000CL, fe.data(1));
                // after RESET_DEVICE the rings are forgotten: a kick alone starts nothing, nothing is served
                fe.client.request(VhostUserProtocol.RESET_DEVICE);
                h.events.await("stopped", "[0]");
                try (EventNotifier k = new EventNotifier()) {
                    fe.client.setU64(VhostUserProtocol.SET_VRING_KICK, 0, k.fd());
                }
                assertEquals(0, fe.client.getVringBase(0), "the ring's state was forgotten");
                assertFalse(h.server.server().device().isRunning());
            }
            h.assertStillServingAndIntact();
        }
    }

    // ------------------------------------------------------------------ what the guest puts in the rings

    /** Bad chains break the device (needs reset, error descriptor signalled); nothing reaches the image. */
    @Test
    void loopingLongAndNestedChainsBreakTheDeviceNotTheServer(@TempDir Path dir) throws Exception {
        List<Consumer<TestFrontend>> chains = new ArrayList<>();
        // a loop: 0 -> 1 -> 0
        chains.add(fe -> {
            fe.ring.writeDesc(0, TestFrontend.HDR, 16, VirtioRing.DESC_F_NEXT, 1);
            fe.ring.writeDesc(1, TestFrontend.DATA, 512, VirtioRing.DESC_F_NEXT, 0);
        });
        // a chain through every descriptor and past: longer than the ring
        chains.add(fe -> {
            for (int i = 0; i < TestFrontend.QSIZE; i++) {
                fe.ring.writeDesc(i, TestFrontend.DATA, 512, VirtioRing.DESC_F_NEXT, (i + 1) % TestFrontend.QSIZE);
            }
        });
        // an indirect table holding an indirect descriptor
        chains.add(fe -> {
            long table = 0x8000;
            fe.ring.writeDesc(table, 0, TestFrontend.HDR, 16, VirtioRing.DESC_F_NEXT, 1);
            fe.ring.writeDesc(table, 1, 0x9000, 32, VirtioRing.DESC_F_INDIRECT, 0);
            fe.ring.writeDesc(0, table, 32, VirtioRing.DESC_F_INDIRECT, 0);
        });
        // a buffer outside guest memory, and one that wraps 2^64
        chains.add(fe -> fe.ring.writeDesc(0, TestFrontend.RAM - 8, 512, 0, 0));
        chains.add(fe -> fe.ring.writeDesc(0, -256, 512, 0, 0));
        // a link past the table
        chains.add(fe -> fe.ring.writeDesc(0, TestFrontend.HDR, 16, VirtioRing.DESC_F_NEXT, 999));
        try (HostileHarness h = new HostileHarness(dir, false)) {
            for (Consumer<TestFrontend> chain : chains) {
                try (EventNotifier err = new EventNotifier(); TestFrontend fe = new TestFrontend(h.sock)) {
                    fe.negotiate();
                    fe.addMemory();
                    fe.client.setU64(VhostUserProtocol.SET_VRING_ERR, 0, err.fd());
                    fe.client.setU64(VhostUserProtocol.SET_FEATURES, io.vblk.virtio.VirtioFeatures.VERSION_1
                            | io.vblk.virtio.VirtioFeatures.INDIRECT_DESC | VhostUserProtocol.F_PROTOCOL_FEATURES);
                    fe.startRing(0, 0);
                    chain.accept(fe);
                    fe.ring.putAvail(0);
                    fe.ring.publish();
                    fe.kick.set();
                    long deadline = System.nanoTime() + BOUND.toNanos();
                    while (!err.testAndClear()) {
                        assertTrue(System.nanoTime() < deadline, "the error descriptor was not signalled");
                        Thread.onSpinWait();
                    }
                    assertTrue(h.server.device().isBroken(), "the device needs a reset");
                    assertEquals(0, fe.usedIdx(), "nothing was completed");
                }
                h.dropped("");
            }
            h.assertStillServingAndIntact();
        }
    }

    /** Requests past the disk, a read-only export asked to write, discard or zero: errors, image unchanged. */
    @Test
    void oversizedRequestsAndWritesToAReadOnlyExportChangeNothing(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, true)) {
            try (TestFrontend fe = new TestFrontend(h.sock)) {
                fe.negotiate();
                fe.addMemory();
                fe.startRing(0, 0);
                int slot = 0;
                // a read past the end, a read that straddles it, a sector near 2^64
                for (long sector : new long[] {2048, 2047, -1L}) {
                    fe.submit(slot, VirtioBlkAbi.T_IN, sector, 1024);
                    assertTrue(fe.awaitCall(BOUND));
                    assertEquals(VirtioBlkAbi.S_IOERR, fe.status(slot++), "sector " + sector);
                    fe.ring.pollUsed();
                }
                for (int type : new int[] {VirtioBlkAbi.T_OUT, VirtioBlkAbi.T_DISCARD, VirtioBlkAbi.T_WRITE_ZEROES}) {
                    fe.submit(slot, type, 0, type == VirtioBlkAbi.T_OUT ? 512 : 16);
                    assertTrue(fe.awaitCall(BOUND));
                    assertNotEquals(VirtioBlkAbi.S_OK, fe.status(slot++), "type " + type);
                    fe.ring.pollUsed();
                }
                fe.submit(slot, VirtioBlkAbi.T_FLUSH, 0, 512);
                assertTrue(fe.awaitCall(BOUND));
            }
            h.dropped("");
            h.assertStillServingAndIntact();
        }
    }

    // ------------------------------------------------------------------ the front-end goes away

    /** A front-end that leaves after each step of a session (and mid-request); each next one is served. */
    @Test
    void aFrontEndThatDisappearsAtEveryStepLeavesTheServerServing(@TempDir Path dir) throws Exception {
        List<Consumer<TestFrontend>> steps = List.of(
                fe -> fe.client.getU64(VhostUserProtocol.GET_FEATURES),
                fe -> fe.negotiate(),
                TestFrontend::addMemory,
                fe -> fe.client.setU64(VhostUserProtocol.SET_FEATURES, io.vblk.virtio.VirtioFeatures.VERSION_1
                        | VhostUserProtocol.F_PROTOCOL_FEATURES),
                fe -> fe.client.setState(VhostUserProtocol.SET_VRING_NUM, 0, TestFrontend.QSIZE),
                fe -> fe.client.setVringAddr(0, fe.uaddr(TestFrontend.DESC), fe.uaddr(TestFrontend.USED),
                        fe.uaddr(TestFrontend.AVAIL)),
                fe -> fe.startRing(0, 0),
                fe -> fe.submit(0, VirtioBlkAbi.T_IN, 1),
                fe -> {
                    for (int i = 1; i < 5; i++) {
                        fe.submit(i, VirtioBlkAbi.T_OUT, 100 + i);
                    }
                },
                fe -> fe.client.getVringBase(0));
        try (HostileHarness h = new HostileHarness(dir, false)) {
            for (int k = 0; k <= steps.size(); k++) {
                try (TestFrontend fe = new TestFrontend(h.sock)) {
                    for (int i = 0; i < k; i++) {
                        steps.get(i).accept(fe);
                    }
                }
                h.dropped("");
            }
            h.servesNext();
            assertTrue(h.server.mainLoop().failures().isEmpty(), h.server.mainLoop().failures().toString());
        }
    }

    /** A front-end that never reads its replies fills its socket; the server drops it instead of waiting. */
    @Test
    void aFrontEndThatDoesNotReadItsRepliesIsDropped(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, false)) {
            try (UnixSocket s = h.raw()) {
                VhostUserMsg m = VhostUserMsg.of(VhostUserProtocol.GET_QUEUE_NUM, VERSION);
                long deadline = System.nanoTime() + BOUND.toNanos();
                boolean dropped = false;
                while (!dropped) {
                    assertTrue(System.nanoTime() < deadline, "the server kept the connection");
                    try {
                        m.writeNow(s);
                    } catch (VhostUserException e) {
                        dropped = e.disconnected();
                        Thread.onSpinWait(); // our own buffer is full: the server is still reading
                    }
                }
            }
            h.dropped("does not read");
            h.assertStillServingAndIntact();
        }
    }

    /**
     * The one hang the 10-minute fuzzer saw (bench/RESULTS.md, run 1): no
     * reply to {@code POSTCOPY_LISTEN flags=0x9 size=124} within 10 s. The
     * postcopy requests (not offered) have replies of their own, so each must
     * get exactly one answer whatever its flags (NEED_REPLY, the REPLY bit
     * set on a request, another version), payload (none, a u64, the
     * fuzzer's 124 bytes) and descriptors — and the stream must stay in step:
     * the GET_QUEUE_NUM sent behind each is answered next, with 1. Sent both
     * as whole messages and cut in two, the second piece carrying the rest
     * of the message and the whole GET_QUEUE_NUM (a message completed in the
     * wake-up that brings the next one). The descriptors that came with them
     * are closed.
     */
    @Test
    void postcopyRequestsAreAnsweredOnceWhateverTheirFlagsPayloadAndDescriptors(@TempDir Path dir) throws Exception {
        try (HostileHarness h = new HostileHarness(dir, true); UnixSocket s = h.raw()) {
            negotiate(s);
            int[] requests = {VhostUserProtocol.POSTCOPY_ADVISE, VhostUserProtocol.POSTCOPY_LISTEN,
                VhostUserProtocol.POSTCOPY_END};
            int[] flagSets = {VERSION, NEED, VERSION | VhostUserProtocol.FLAG_REPLY, NEED | VhostUserProtocol.FLAG_REPLY,
                2 | VhostUserProtocol.FLAG_NEED_REPLY, 0};
            int[] sizes = {0, 8, 124};
            long fdsBefore = openFds();
            int asked = 0;
            for (int request : requests) {
                for (int flags : flagSets) {
                    for (int size : sizes) {
                        for (int split = 0; split < 2; split++) {
                            EventNotifier e = new EventNotifier();
                            int[] pipe = Fds.pipe();
                            int[] fds = (asked % 3) == 0 ? new int[0] : (asked % 3) == 1 ? new int[] {e.fd()}
                                    : new int[] {pipe[1], e.fd(), pipe[0]};
                            byte[] p = new byte[size];
                            java.util.Arrays.fill(p, (byte) 0xA5);
                            VhostUserMsg m = new VhostUserMsg(request, flags, p, fds);
                            byte[] next = wire(VhostUserMsg.of(VhostUserProtocol.GET_QUEUE_NUM, VERSION));
                            if (split == 0) {
                                m.write(s);
                                s.send(next, next.length, null);
                            } else {
                                byte[] b = wire(m);
                                int cut = Math.min(b.length - 1, 7 + size / 2);
                                s.send(b, cut, fds);
                                byte[] rest = new byte[b.length - cut + next.length];
                                System.arraycopy(b, cut, rest, 0, b.length - cut);
                                System.arraycopy(next, 0, rest, b.length - cut, next.length);
                                s.send(rest, rest.length, null);
                            }
                            String what = m + (split == 1 ? " (cut in two)" : "");
                            VhostUserMsg r = VhostUserMsg.read(s);
                            assertNotNull(r, what + ": the connection was closed instead of answered");
                            assertEquals(request, r.request(), what + " -> " + r);
                            assertTrue(r.isReply(), what + " -> " + r);
                            VhostUserMsg q = VhostUserMsg.read(s);
                            assertNotNull(q, what + ": the connection was closed after the answer");
                            assertEquals(VhostUserProtocol.GET_QUEUE_NUM, q.request(), what + ": out of step, "
                                    + "then " + q);
                            assertEquals(1, q.u64());
                            e.close();
                            Fds.close(pipe);
                            asked++;
                        }
                    }
                }
            }
            assertEquals(fdsBefore, openFds(), "the descriptors that came with the " + asked + " requests are closed");
        }
    }

    /** A message as it goes on the wire (header and payload; descriptors travel beside). */
    private static byte[] wire(VhostUserMsg m) {
        byte[] b = new byte[12 + m.size()];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, m.request()).putInt(4, m.flags()).putInt(8, m.size());
        m.payload().get(0, b, 12, m.size());
        return b;
    }

    // ------------------------------------------------------------------ helpers

    /** Guest RAM in a memfd, for tests that speak raw messages. */
    private static final class Ram implements AutoCloseable {
        final io.vblk.virtio.RamRegion ram = io.vblk.virtio.RamRegion.memfd("hostile-ram", 0, TestFrontend.RAM);

        long uaddr(long gpa) {
            return ram.hostAddress() + gpa;
        }

        @Override
        public void close() {
            ram.close();
        }
    }

    private static byte[] header(int request, int flags, int size) {
        byte[] h = new byte[12];
        ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN).putInt(0, request).putInt(4, flags).putInt(8, size);
        return h;
    }

    /** SET_MEM_TABLE of {gpa, size, uaddr, offset} rows, one descriptor each as given. */
    static VhostUserMsg memTable(long[][] regions, int... fds) {
        byte[] b = new byte[8 + 32 * regions.length];
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        bb.putInt(0, regions.length);
        for (int i = 0; i < regions.length; i++) {
            for (int j = 0; j < 4; j++) {
                bb.putLong(8 + 32 * i + 8 * j, regions[i][j]);
            }
        }
        return new VhostUserMsg(VhostUserProtocol.SET_MEM_TABLE, NEED, b, fds);
    }

    static VhostUserMsg addMemReg(long gpa, long size, long uaddr, long offset, int fd) {
        byte[] b = new byte[VhostUserProtocol.MEM_REG_SIZE];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(8, gpa).putLong(16, size).putLong(24, uaddr)
                .putLong(32, offset);
        return new VhostUserMsg(VhostUserProtocol.ADD_MEM_REG, NEED, b, new int[] {fd});
    }

    static VhostUserMsg vringAddr(int q, int flags, long desc, long used, long avail) {
        byte[] b = new byte[VhostUserProtocol.ADDR_SIZE];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putInt(0, q).putInt(4, flags).putLong(8, desc)
                .putLong(16, used).putLong(24, avail);
        return new VhostUserMsg(VhostUserProtocol.SET_VRING_ADDR, NEED, b, null);
    }

    private static long openFds() throws java.io.IOException {
        try (java.util.stream.Stream<Path> l = java.nio.file.Files.list(Path.of("/proc/self/fd"))) {
            return l.count();
        }
    }
}
