package io.vblk.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlockNode;
import io.vblk.testkit.BlkHeaders;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.virtio.InflightRegion;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD, back-end side: GET_INFLIGHT_FD hands
 * out a region in the spec's split-ring layout, a request is marked in
 * flight from pop to publication, and a back-end given a region that a
 * crashed one left behind resubmits what was in flight, oldest first, as
 * writes, and continues reading the avail ring after them.
 */
@Tag("concurrency")
class InflightTest {
    private static final Duration BOUND = Duration.ofSeconds(30);
    private static final int NEED = VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_NEED_REPLY;
    private static final long REGION = InflightRegion.queueRegionSize(TestFrontend.QSIZE);

    private static VhostUserMsg inflightMsg(int request, long size, int queues, int qsize, int... fds) {
        byte[] b = new byte[InflightTable.MSG_SIZE];
        ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, size).putShort(16, (short) queues)
                .putShort(18, (short) qsize);
        return new VhostUserMsg(request, request == VhostUserProtocol.GET_INFLIGHT_FD ? VhostUserProtocol.VERSION
                : NEED, b, fds);
    }

    @Test
    void getInflightFdGivesTheSpecLayoutAndRequestsAreMarkedFromPopToPublication(@TempDir Path dir)
            throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        AtomicReference<BlkDebugDriver> dbg = new AtomicReference<>();
        VhostUserBlkServer.NodeOpener opener = (layer, o) -> {
            BlockNode r = layer.openImage("img", o.image(), "raw", false);
            BlockNode d = layer.openBlkDebug("disk", r);
            r.unref();
            dbg.set((BlkDebugDriver) d.driver());
            return d;
        };
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"),
                img, "raw"), opener, VhostUserEvents.NONE);
             TestFrontend fe = new TestFrontend(srv.socket())) {
            fe.negotiate();
            VhostUserMsg r = fe.client.requestReply(inflightMsg(VhostUserProtocol.GET_INFLIGHT_FD, 0, 1,
                    TestFrontend.QSIZE));
            assertEquals(InflightTable.MSG_SIZE, r.size());
            assertEquals(REGION, r.u64(0), "one queue of 16: header and 16 descriptor states, 64-aligned");
            assertEquals(1, r.fdCount(), "the region's memfd comes with the reply");
            int fd = r.takeFd(0);
            try (RamRegion region = RamRegion.mapShared(0, REGION, fd, 0)) {
                InflightRegion view = new InflightRegion(region.hostAddress(), TestFrontend.QSIZE);
                fe.client.send(inflightMsg(VhostUserProtocol.SET_INFLIGHT_FD, REGION, 1, TestFrontend.QSIZE, fd));
                fe.addMemory();
                fe.startRing(0, 0);
                fe.submit(0, VirtioBlkAbi.T_IN, 5);
                assertTrue(fe.awaitCall(BOUND));
                assertEquals(InflightRegion.VERSION, view.version(), "the back-end initialised the fresh region");
                assertEquals(1, view.usedIdx());
                assertFalse(view.isInflight(0), "cleared once published");

                BlkDebugDriver.Suspension hold = dbg.get().suspend("held", BlkDebugDriver.Op.READ, 0, 1L << 20);
                fe.submit(1, VirtioBlkAbi.T_IN, 6);
                srv.mainLoop().watchdog(BOUND).await("request held", hold.reached());
                assertEquals(1, inflightCount(view), "marked in flight while the block layer holds it");
                assertEquals(1, view.usedIdx(), "not yet published");
                hold.resume();
                assertTrue(fe.awaitCall(BOUND));
                assertEquals(0, inflightCount(view), "cleared once published");
                assertEquals(2, view.usedIdx());
            } finally {
                io.vblk.aio.LibC.close(fd);
            }
        }
    }

    /**
     * The test switch of {@code vblk serve --x-hold-after-take N}
     * ({@link TakenRequestHold}): the N-th write — reads and earlier writes
     * pass — is held after it was taken and marked in flight, before the
     * backend sees it, with one line saying so; closing the server lets it
     * go on to the image.
     */
    @Test
    void theTestSwitchHoldsTheNthWriteMarkedInFlightUntilTheServerCloses(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        java.util.concurrent.CompletableFuture<String> announced = new java.util.concurrent.CompletableFuture<>();
        VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"), img,
                "raw"));
        TestFrontend fe = null;
        try {
            fe = new TestFrontend(srv.socket());
            srv.holdAfterTake(2, announced::complete);
            fe.negotiate();
            VhostUserMsg r = fe.client.requestReply(inflightMsg(VhostUserProtocol.GET_INFLIGHT_FD, 0, 1,
                    TestFrontend.QSIZE));
            int fd = r.takeFd(0);
            try (RamRegion region = RamRegion.mapShared(0, REGION, fd, 0)) {
                InflightRegion view = new InflightRegion(region.hostAddress(), TestFrontend.QSIZE);
                fe.client.send(inflightMsg(VhostUserProtocol.SET_INFLIGHT_FD, REGION, 1, TestFrontend.QSIZE, fd));
                fe.addMemory();
                fe.startRing(0, 0);
                fe.mem.writeU64(TestFrontend.DATA, 0x1111L);
                fe.submit(0, VirtioBlkAbi.T_OUT, 10);
                assertTrue(fe.awaitCall(BOUND), "write 1 is not held");
                fe.submit(1, VirtioBlkAbi.T_IN, 11);
                assertTrue(fe.awaitCall(BOUND), "a read is not counted");
                fe.mem.writeU64(TestFrontend.DATA + 0x2000, 0x2222L);
                fe.submit(2, VirtioBlkAbi.T_OUT, 12);
                String line = srv.mainLoop().watchdog(BOUND).await("the hold", announced);
                assertTrue(line.startsWith("holding write request 2 (queue 0, sector 12) in flight"), line);
                assertEquals(1, inflightCount(view), "the held write is marked in flight");
                assertEquals(2, view.usedIdx(), "and not published");
                assertEquals(BlkHeaders.STATUS_UNSET, fe.status(2));
            } finally {
                io.vblk.aio.LibC.close(fd);
            }
        } finally {
            srv.close(); // releases the hold; the rings stop once the write completed
            if (fe != null) {
                fe.close();
            }
        }
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            assertEquals(0x1111L, readLong(ch, 10));
            assertEquals(0x2222L, readLong(ch, 12), "the held write went on once released");
        }
    }

    /**
     * A back-end killed between publishing used entries and signalling its
     * call descriptor leaves them unannounced, and a driver with nothing
     * else in flight never kicks again. The next back-end announces a ring
     * that starts with used entries once; a fresh ring gets no call, nor a
     * ring restarted on the same connection.
     */
    @Test
    void aRingThatStartsWithUsedEntriesIsAnnouncedOnceAFreshOneIsNot(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        for (int usedIdx : new int[] {0, 3}) {
            try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(
                    dir.resolve("s" + usedIdx), img, "raw"));
                 TestFrontend fe = new TestFrontend(srv.socket())) {
                fe.negotiate();
                fe.addMemory();
                fe.mem.writeU16(TestFrontend.USED + VirtioRing.USED_IDX, usedIdx);
                fe.ring.setAvailIdxRaw(usedIdx); // the driver had made as many available as were used
                fe.startRing(0, usedIdx); // with REPLY_ACK: the ring has started when this returns
                assertTrue(srv.server().device().isRunning() && !srv.server().device().device().isBroken(),
                        "the ring runs and is consistent");
                assertEquals(usedIdx != 0, fe.call.testAndClear(),
                        usedIdx != 0 ? "a ring resumed at used.idx 3 is announced" : "a fresh ring gets no call");
                assertFalse(fe.call.testAndClear(), "once");
                if (usedIdx == 0) {
                    fe.submit(0, VirtioBlkAbi.T_IN, 5);
                    assertTrue(fe.awaitCall(BOUND), "the first call is the first completion's");
                    assertEquals(1, fe.client.getVringBase(0), "stopped after the completion");
                    fe.startRing(0, 1);
                    assertFalse(fe.call.testAndClear(), "a restart on the same connection is not announced");
                }
            }
        }
    }

    /** A front-end that gives the call descriptor only after the ring started gets the announcement then. */
    @Test
    void aCallDescriptorGivenAfterTheStartGetsTheAnnouncement(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"),
                img, "raw"));
             TestFrontend fe = new TestFrontend(srv.socket())) {
            fe.negotiate();
            fe.addMemory();
            fe.mem.writeU16(TestFrontend.USED + VirtioRing.USED_IDX, 2);
            fe.ring.setAvailIdxRaw(2);
            fe.client.setU64(VhostUserProtocol.SET_FEATURES, io.vblk.virtio.VirtioFeatures.VERSION_1
                    | VhostUserProtocol.F_PROTOCOL_FEATURES);
            fe.client.setState(VhostUserProtocol.SET_VRING_NUM, 0, TestFrontend.QSIZE);
            fe.client.setState(VhostUserProtocol.SET_VRING_BASE, 0, 2);
            fe.client.setVringAddr(0, fe.uaddr(TestFrontend.DESC), fe.uaddr(TestFrontend.USED),
                    fe.uaddr(TestFrontend.AVAIL));
            fe.client.setU64(VhostUserProtocol.SET_VRING_KICK, 0, fe.kick.fd());
            fe.client.setState(VhostUserProtocol.SET_VRING_ENABLE, 0, 1);
            assertTrue(srv.server().device().isRunning(), "started without a call descriptor");
            fe.client.setU64(VhostUserProtocol.SET_VRING_CALL, 0, fe.call.fd());
            assertTrue(fe.call.testAndClear(), "announced once the call descriptor came");
            assertFalse(fe.call.testAndClear(), "once");
        }
    }

    private static int inflightCount(InflightRegion view) {
        int n = 0;
        for (int h = 0; h < TestFrontend.QSIZE; h++) {
            n += view.isInflight(h) ? 1 : 0;
        }
        return n;
    }

    /**
     * The region a crashed back-end left: heads 4 (counter 7) and 2 (counter 9)
     * in flight — writes — and head 1 published (used.idx 1) but not yet
     * cleared. The next back-end clears head 1, resubmits 4 then 2, and reads
     * the avail ring from used.idx + 2.
     */
    @Test
    void aBackEndGivenACrashedOnesRegionResubmitsWhatWasInFlightInOrder(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"),
                img, "raw"));
             TestFrontend fe = new TestFrontend(srv.socket());
             RamRegion region = RamRegion.memfd("inflight", 0, REGION)) {
            fe.negotiate();
            fe.addMemory();
            // the rings as the guest left them: avail [1, 4, 2], used [1], used.idx 1
            long[] sectors = {0, 300, 200, 0, 100};
            for (int head : new int[] {1, 4, 2}) {
                long h = TestFrontend.HDR + 32L * head;
                BlkHeaders.writeOuthdr(fe.mem, h, VirtioBlkAbi.T_OUT, sectors[head]);
                fe.mem.writeU8(h + 16, BlkHeaders.STATUS_UNSET);
                long data = TestFrontend.DATA + 0x1000L * head;
                fe.mem.writeU64(data, 0x5EED_0000L + head);
            }
            // chains: head h uses descriptors h (header) -> 5+h (data) -> 10+h (status)
            for (int head : new int[] {1, 4, 2}) {
                long h = TestFrontend.HDR + 32L * head;
                fe.ring.writeDesc(head, h, 16, VirtioRing.DESC_F_NEXT, 5 + head);
                fe.ring.writeDesc(5 + head, TestFrontend.DATA + 0x1000L * head, 512, VirtioRing.DESC_F_NEXT, 10 + head);
                fe.ring.writeDesc(10 + head, h + 16, 1, VirtioRing.DESC_F_WRITE, 0);
                fe.ring.putAvail(head);
            }
            fe.ring.publish();
            long usedBase = TestFrontend.USED;
            fe.mem.writeU32(usedBase + VirtioRing.USED_RING, 1);
            fe.mem.writeU32(usedBase + VirtioRing.USED_RING + 4, 0);
            fe.mem.writeU16(usedBase + VirtioRing.USED_IDX, 1);
            // the inflight region: version 1, used_idx 0 (the crash came before the clear), last batch = head 1
            long a = region.hostAddress();
            io.vblk.virtio.HostMemory.putShortLE(a + 8, 1);
            io.vblk.virtio.HostMemory.putShortLE(a + 10, TestFrontend.QSIZE);
            io.vblk.virtio.HostMemory.putShortLE(a + 12, 1);
            io.vblk.virtio.HostMemory.putShortLE(a + 14, 0);
            markInflight(a, 1, 5, 1);
            markInflight(a, 4, 7, 4);
            markInflight(a, 2, 9, 2);

            fe.client.send(inflightMsg(VhostUserProtocol.SET_INFLIGHT_FD, REGION, 1, TestFrontend.QSIZE,
                    region.fd()));
            fe.startRing(0, 1); // QEMU's base after a crash: used.idx (virtio_queue_restore_last_avail_idx)
            assertTrue(fe.awaitUsed(3, BOUND), "the two requests in flight were resubmitted and completed");
            long u = usedBase + VirtioRing.USED_RING;
            assertEquals(4, fe.mem.readU32(u + 8), "oldest first: head 4 (counter 7)");
            assertEquals(2, fe.mem.readU32(u + 16), "then head 2 (counter 9)");
            assertEquals(0, fe.mem.readU8(TestFrontend.HDR + 32L * 4 + 16));
            assertEquals(0, fe.mem.readU8(TestFrontend.HDR + 32L * 2 + 16));
            assertEquals(0xFF, fe.mem.readU8(TestFrontend.HDR + 32L * 1 + 16), "head 1 was not resubmitted");
            InflightRegion view = new InflightRegion(a, TestFrontend.QSIZE);
            for (int h = 0; h < TestFrontend.QSIZE; h++) {
                assertFalse(view.isInflight(h), "head " + h + " still marked");
            }
            assertEquals(3, view.usedIdx());
            assertEquals(3, fe.client.getVringBase(0), "avail continues after the resubmitted requests");
        }
        // the writes reached the image: sector 100 holds head 4's data, 200 head 2's, 300 untouched by head 1
        try (FileChannel ch = FileChannel.open(img, StandardOpenOption.READ)) {
            assertEquals(0x5EED_0004L, readLong(ch, 100));
            assertEquals(0x5EED_0002L, readLong(ch, 200));
            assertEquals(0xABC00000L + 300, readLong(ch, 300), "head 1 was published before the crash: not redone");
        }
    }

    private static void markInflight(long region, int head, long counter, int next) {
        long d = region + InflightRegion.HEADER_SIZE + 16L * head;
        io.vblk.virtio.HostMemory.putU8(d, 1);
        io.vblk.virtio.HostMemory.putShortLE(d + 6, next);
        io.vblk.virtio.HostMemory.putLongLE(d + 8, counter);
    }

    private static long readLong(FileChannel ch, long sector) throws java.io.IOException {
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        ch.read(b, sector * 512);
        return b.getLong(0);
    }
}
