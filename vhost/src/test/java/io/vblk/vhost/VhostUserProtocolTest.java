package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.FLAG_NEED_REPLY;
import static io.vblk.vhost.VhostUserProtocol.FLAG_REPLY;
import static io.vblk.vhost.VhostUserProtocol.VERSION;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.EventNotifier;
import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockNode;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code vblk serve} at the protocol level, driven by a bare front-end: the
 * handshake, every refusal the protocol allows (the stream stays in sync and
 * the server keeps serving), descriptor passing, ring start and stop through
 * the dataplane — GET_VRING_BASE answers only after the request it popped
 * was completed and signalled — memory-table changes under running rings,
 * and no descriptor leaked across connections.
 */
@Tag("concurrency")
class VhostUserProtocolTest {
    private static final Duration BOUND = Duration.ofSeconds(30);

    /** A raw image whose sector s starts with 0xABC00000 + s. */
    private static Path patterned(Path p) throws IOException {
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
            ByteBuffer b = ByteBuffer.allocate(512).order(ByteOrder.LITTLE_ENDIAN);
            for (int s = 0; s < 64; s++) {
                b.clear();
                b.putLong(0, 0xABC00000L + s);
                ch.write(b, 512L * s);
            }
            ch.truncate(1L << 20);
            ch.write(ByteBuffer.wrap(new byte[1]), (1L << 20) - 1);
        }
        return p;
    }

    private static VhostUserMsg raw(UnixSocket s, VhostUserMsg m) {
        m.write(s);
        return VhostUserMsg.read(s);
    }

    private static long openFds() throws IOException {
        try (Stream<Path> l = Files.list(Path.of("/proc/self/fd"))) {
            return l.count();
        }
    }

    /**
     * The descriptor count once it reaches {@code expected}, or what it is at
     * the deadline: the "disconnected" event may come before another thread
     * (an IOThread releasing a ring's memory) has closed what it holds.
     */
    private static long openFdsSettling(long expected) throws IOException {
        long deadline = System.nanoTime() + BOUND.toNanos();
        long n;
        while ((n = openFds()) != expected && System.nanoTime() < deadline) {
            Thread.onSpinWait();
        }
        return n;
    }

    @Test
    void handshakeAsQemuSendsIt(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        VhostUserBlkServer.Options o = VhostUserBlkServer.Options.image(sock, patterned(dir.resolve("d.raw")), "raw")
                .withQueues(2);
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(o);
             VhostUserClient c = VhostUserClient.connect(sock, BOUND)) {
            long f = c.getU64(VhostUserProtocol.GET_FEATURES);
            assertTrue((f & VirtioFeatures.VERSION_1) != 0);
            assertTrue((f & VhostUserProtocol.F_PROTOCOL_FEATURES) != 0);
            assertTrue((f & VirtioFeatures.EVENT_IDX) != 0);
            assertTrue((f & VirtioBlkAbi.F_MQ) != 0, "two queues: VIRTIO_BLK_F_MQ");
            assertEquals(VhostUserDevice.OFFERED_PROTOCOL_FEATURES, c.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES));
            c.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, VhostUserDevice.OFFERED_PROTOCOL_FEATURES);
            c.setReplyAck(true);
            assertEquals(2, c.getU64(VhostUserProtocol.GET_QUEUE_NUM));
            assertEquals(VhostUserDevice.MAX_MEM_SLOTS, c.getU64(VhostUserProtocol.GET_MAX_MEM_SLOTS));
            UnixSocket[] pair = UnixSocket.pair();
            try {
                c.setU64(VhostUserProtocol.SET_BACKEND_REQ_FD, 0, pair[1].fd()); // acked (NEED_REPLY)
            } finally {
                pair[0].close();
                pair[1].close();
            }
            c.request(VhostUserProtocol.SET_OWNER);
            byte[] cfg = c.getConfig(0, 60);
            ByteBuffer b = ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals((1L << 20) / 512, b.getLong(0), "capacity in sectors");
            assertEquals(512, b.getInt(20), "blk_size");
            assertEquals(2, b.getShort(34), "num_queues");
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    @Test
    void everyMalformedOrUnknownMessageIsRefusedAndTheStreamStaysInSync(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        HostileHarness.RecordingEvents ev = new HostileHarness.RecordingEvents();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(
                VhostUserBlkServer.Options.image(sock, patterned(dir.resolve("d.raw")), "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev);
             UnixSocket s = UnixSocket.connect(sock)) {
            s.setTimeouts(BOUND, BOUND);
            int need = VERSION | FLAG_NEED_REPLY;
            // unknown request, NEED_REPLY: a failure ack
            assertAck(1, raw(s, VhostUserMsg.ofU64(99, need, 0)));
            // unknown request without NEED_REPLY: no reply; the next request's reply is its own
            VhostUserMsg.of(77, VERSION).write(s);
            assertEquals(1, raw(s, VhostUserMsg.of(VhostUserProtocol.GET_QUEUE_NUM, VERSION)).u64());
            // a session-changing request before SET_OWNER is refused; then the session gets its owner
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, need, 0, 8)));
            assertAck(0, raw(s, VhostUserMsg.of(VhostUserProtocol.SET_OWNER, need)));
            // unsupported requests that have a reply: an empty one (the front-end reports the failure)
            assertEquals(0, raw(s, VhostUserMsg.of(VhostUserProtocol.GET_INFLIGHT_FD, VERSION)).size());
            assertEquals(0, raw(s, VhostUserMsg.of(VhostUserProtocol.GET_STATUS, VERSION)).size());
            // wrong payload sizes, bad ring indices, bad values
            assertAck(1, raw(s, new VhostUserMsg(VhostUserProtocol.SET_VRING_NUM, need, new byte[4], null)));
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, need, 5, 8)));
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, need, 0, 6)));
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_NUM, need, 0, 2048)));
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_BASE, need, 0, 1 << 20)));
            assertAck(1, raw(s, VhostUserMsg.ofState(VhostUserProtocol.SET_VRING_ENABLE, need, 0, 7)));
            assertAck(1, raw(s, VhostUserMsg.ofU64(VhostUserProtocol.SET_FEATURES, need, 1L << 60)));
            assertAck(1, raw(s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_KICK, need,
                    VhostUserProtocol.VRING_NOFD_MASK)));
            assertAck(1, raw(s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_CALL, need, 0))); // no descriptor
            assertAck(1, raw(s, new VhostUserMsg(VhostUserProtocol.SET_MEM_TABLE, need, new byte[8], null)));
            assertAck(1, raw(s, new VhostUserMsg(VhostUserProtocol.REM_MEM_REG, need, new byte[40], null)));
            assertEquals(0, raw(s, VhostUserMsg.ofState(VhostUserProtocol.GET_VRING_BASE, VERSION, 9, 0)).size());
            byte[] cfg = new byte[12 + 8];
            ByteBuffer.wrap(cfg).order(ByteOrder.LITTLE_ENDIAN).putInt(0, 250).putInt(4, 8);
            assertEquals(0, raw(s, new VhostUserMsg(VhostUserProtocol.GET_CONFIG, VERSION, cfg, null)).size());
            // header problems: the REPLY flag on a request, another protocol version
            assertAck(1, raw(s, VhostUserMsg.of(VhostUserProtocol.SET_OWNER, VERSION | FLAG_REPLY | FLAG_NEED_REPLY)));
            assertAck(1, raw(s, VhostUserMsg.of(VhostUserProtocol.SET_OWNER, 2 | FLAG_NEED_REPLY)));
            // descriptors on a message that takes none are closed; on one that takes one, accepted
            long before = openFds();
            try (EventNotifier e = new EventNotifier()) {
                assertAck(0, raw(s, VhostUserMsg.ofU64(VhostUserProtocol.SET_OWNER, need, 0, e.fd())));
                assertAck(0, raw(s, VhostUserMsg.ofU64(VhostUserProtocol.SET_VRING_ERR, need, 0, e.fd())));
            }
            assertEquals(before + 1, openFds(), "the unused descriptor was closed, the error eventfd kept");
            // and it still serves
            assertEquals(1, raw(s, VhostUserMsg.of(VhostUserProtocol.GET_QUEUE_NUM, VERSION)).u64());
            assertTrue(srv.server().isConnected());
            assertTrue(srv.server().device().refusals() >= 20, srv.describe());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    private static void assertAck(long expected, VhostUserMsg reply) {
        assertNotNull(reply, "the back-end closed the connection instead of answering");
        assertTrue(reply.isReply(), reply.toString());
        assertEquals(8, reply.size(), reply.toString());
        assertEquals(expected, reply.u64(), reply.toString());
    }

    @Test
    void anUntrustworthyHeaderEndsTheConnectionAndTheNextFrontEndIsServed(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        HostileHarness.RecordingEvents ev = new HostileHarness.RecordingEvents();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(
                VhostUserBlkServer.Options.image(sock, patterned(dir.resolve("d.raw")), "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev)) {
            try (UnixSocket s = UnixSocket.connect(sock)) {
                s.setTimeouts(BOUND, BOUND);
                byte[] h = new byte[12];
                ByteBuffer.wrap(h).order(ByteOrder.LITTLE_ENDIAN).putInt(0, VhostUserProtocol.GET_FEATURES)
                        .putInt(4, VERSION).putInt(8, 1 << 20);
                s.send(h, h.length, null);
                assertNull(VhostUserMsg.read(s), "the back-end drops the connection");
                ev.await("disconnected: dropped");
            }
            // a front-end that dies half-way through a message
            try (UnixSocket s = UnixSocket.connect(sock)) {
                byte[] h = new byte[6];
                s.send(h, h.length, null);
            }
            ev.await("disconnected");
            try (VhostUserClient c = VhostUserClient.connect(sock, BOUND)) {
                assertEquals(1, c.getU64(VhostUserProtocol.GET_QUEUE_NUM));
            }
            ev.await("disconnected");
            assertEquals(3, srv.server().connections());
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    /**
     * One request through a ring: the kick descriptor is served by the
     * IOThread, the completion arrives on the call descriptor, and
     * GET_VRING_BASE — sent while the request is held in the block layer —
     * is answered only after that request was pushed and signalled.
     */
    @Test
    void getVringBaseAnswersOnlyOnceThePoppedRequestWasCompletedAndSignalled(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        Path img = patterned(dir.resolve("d.raw"));
        HostileHarness.RecordingEvents ev = new HostileHarness.RecordingEvents();
        AtomicReference<BlkDebugDriver> dbg = new AtomicReference<>();
        VhostUserBlkServer.NodeOpener opener = (layer, o) -> {
            BlockNode r = layer.openImage("img", o.image(), "raw", false);
            BlockNode d = layer.openBlkDebug("disk", r);
            r.unref();
            dbg.set((BlkDebugDriver) d.driver());
            return d;
        };
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(sock, img, "raw"),
                opener, ev);
             TestFrontend fe = new TestFrontend(sock)) {
            fe.negotiate();
            fe.addMemory();
            fe.startRing(0, 0);
            ev.await("started [0]");
            fe.submit(0, VirtioBlkAbi.T_IN, 5);
            assertTrue(fe.awaitCall(BOUND), "completion signalled on the call descriptor");
            assertEquals(1, fe.usedIdx());
            assertEquals(0, fe.status(0));
            assertEquals(0xABC00005L, fe.data(0));

            BlkDebugDriver.Suspension hold = dbg.get().suspend("held", BlkDebugDriver.Op.READ, 0, 1L << 20);
            fe.submit(1, VirtioBlkAbi.T_IN, 7);
            srv.mainLoop().watchdog(BOUND).await("request held in the block layer", hold.reached());
            CompletableFuture<Integer> base = CompletableFuture.supplyAsync(() -> fe.client.getVringBase(0));
            assertThrows(TimeoutException.class, () -> base.get(300, TimeUnit.MILLISECONDS),
                    "GET_VRING_BASE must wait for the held request");
            assertEquals(1, fe.usedIdx(), "nothing pushed while the request is held");
            hold.resume();
            assertEquals(2, srv.mainLoop().watchdog(BOUND).await("GET_VRING_BASE reply", base));
            assertEquals(2, fe.usedIdx(), "the held request was pushed before the answer");
            assertEquals(0, fe.status(1));
            assertEquals(0xABC00007L, fe.data(1));
            assertTrue(fe.call.testAndClear(), "and signalled before the answer");
            ev.await("stopped [0]");
            assertFalse(srv.server().device().isRunning());

            // the ring restarts where it stopped
            fe.startRing(0, 2);
            ev.await("started [0]");
            fe.submit(2, VirtioBlkAbi.T_IN, 9);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(3, fe.usedIdx());
            assertEquals(0xABC00009L, fe.data(2));
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    /** SET_MEM_TABLE with two regions, then REM/ADD_MEM_REG under a running ring: stop, remap, restart. */
    @Test
    void memoryTableChangesUnderARunningRing(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        HostileHarness.RecordingEvents ev = new HostileHarness.RecordingEvents();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(
                VhostUserBlkServer.Options.image(sock, patterned(dir.resolve("d.raw")), "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev);
             TestFrontend fe = new TestFrontend(sock)) {
            fe.negotiate();
            long half = TestFrontend.RAM / 2;
            // two regions of the one memfd: [0, half) and [half, RAM)
            fe.client.setMemTable(new long[] {0, half}, new long[] {half, half},
                    new long[] {fe.uaddr(0), fe.uaddr(half)}, new long[] {0, half}, new int[] {fe.ram.fd(), fe.ram.fd()});
            fe.startRing(0, 0);
            ev.await("started [0]");
            fe.submit(0, VirtioBlkAbi.T_IN, 1);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00001L, fe.data(0));
            byte[] reg = new byte[VhostUserProtocol.MEM_REG_SIZE];
            ByteBuffer.wrap(reg).order(ByteOrder.LITTLE_ENDIAN).putLong(8, half).putLong(16, half)
                    .putLong(24, fe.uaddr(half)).putLong(32, half);
            fe.client.send(new VhostUserMsg(VhostUserProtocol.REM_MEM_REG, VERSION | FLAG_NEED_REPLY, reg, null));
            ev.await("stopped [0]");
            ev.await("started [0]");
            fe.submit(1, VirtioBlkAbi.T_IN, 2);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00002L, fe.data(1));
            fe.client.addMemReg(half, half, fe.uaddr(half), half, fe.ram.fd());
            ev.await("stopped [0]");
            ev.await("started [0]");
            fe.submit(2, VirtioBlkAbi.T_IN, 3);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00003L, fe.data(2));
            // an overlapping region is refused, the ring keeps running
            assertThrows(VhostUserException.class, () -> fe.client.addMemReg(0, 4096, fe.uaddr(0), 0, fe.ram.fd()));
            fe.submit(3, VirtioBlkAbi.T_IN, 4);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00004L, fe.data(3));
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }

    /** A front-end that leaves with its ring running: the device is reset and every descriptor it passed closed. */
    @Test
    void disconnectWithARunningRingLeavesNothingBehind(@TempDir Path dir) throws Exception {
        Path sock = dir.resolve("s.sock");
        HostileHarness.RecordingEvents ev = new HostileHarness.RecordingEvents();
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(
                VhostUserBlkServer.Options.image(sock, patterned(dir.resolve("d.raw")), "raw"),
                VhostUserBlkServer.DEFAULT_OPENER, ev)) {
            long baseline = -1;
            for (int round = 0; round < 4; round++) {
                long before = openFds();
                try (TestFrontend fe = new TestFrontend(sock)) {
                    fe.negotiate();
                    fe.addMemory();
                    fe.startRing(0, 0);
                    ev.await("started [0]");
                    fe.submit(0, VirtioBlkAbi.T_IN, 3);
                    assertTrue(fe.awaitCall(BOUND));
                }
                ev.await("stopped [0]");
                ev.await("disconnected");
                assertEquals(0, srv.device().status(), "the device was reset");
                if (round == 0) {
                    baseline = openFds(); // after a first round: whatever the JVM opens lazily is open now
                } else {
                    assertEquals(before, openFdsSettling(before), "round " + round + ": a descriptor was leaked");
                    assertEquals(baseline, openFds());
                }
            }
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }
}
