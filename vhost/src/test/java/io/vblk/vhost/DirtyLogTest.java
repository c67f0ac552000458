package io.vblk.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.virtio.HostMemory;
import io.vblk.virtio.RamRegion;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Live-migration dirty logging (VHOST_F_LOG_ALL with
 * VHOST_USER_PROTOCOL_F_LOG_SHMFD): while logging, the pages the back-end
 * writes — the read's data, the status byte, the used ring (with
 * VHOST_VRING_F_LOG) — have their bits set in the front-end's bitmap, and
 * the pages it only reads do not; with logging off, nothing is set.
 */
class DirtyLogTest {
    private static final Duration BOUND = Duration.ofSeconds(30);
    private static final int NEED = VhostUserProtocol.VERSION | VhostUserProtocol.FLAG_NEED_REPLY;

    private static boolean dirty(RamRegion log, long gpa) {
        long page = gpa >>> 12;
        return (HostMemory.getU8(log.hostAddress() + (page >>> 3)) & (1 << (page & 7))) != 0;
    }

    @Test
    void whileLoggingTheWrittenPagesAreMarkedAndOnlyThem(@TempDir Path dir) throws Exception {
        Path img = HostileHarness.patterned(dir.resolve("d.raw"));
        long logBytes = TestFrontend.RAM / 4096 / 8;
        try (VhostUserBlkServer srv = VhostUserBlkServer.start(VhostUserBlkServer.Options.image(dir.resolve("s"), img,
                "raw"));
             TestFrontend fe = new TestFrontend(srv.socket());
             RamRegion log = RamRegion.memfd("dirty-log", 0, 4096)) {
            VhostUserClient c = fe.client;
            c.getU64(VhostUserProtocol.GET_FEATURES);
            long pf = c.getU64(VhostUserProtocol.GET_PROTOCOL_FEATURES);
            assertTrue((pf & VhostUserProtocol.pf(VhostUserProtocol.PF_LOG_SHMFD)) != 0, "LOG_SHMFD is offered");
            c.setU64(VhostUserProtocol.SET_PROTOCOL_FEATURES, pf);
            c.setReplyAck(true);
            c.request(VhostUserProtocol.SET_OWNER);
            fe.addMemory();
            byte[] b = new byte[VhostUserLog.MSG_SIZE];
            ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).putLong(0, logBytes).putLong(8, 0);
            VhostUserMsg r = c.requestReply(new VhostUserMsg(VhostUserProtocol.SET_LOG_BASE, VhostUserProtocol.VERSION,
                    b, new int[] {log.fd()}));
            assertEquals(0, r.u64(), "SET_LOG_BASE answered");
            long features = VirtioFeatures.VERSION_1 | VhostUserProtocol.F_PROTOCOL_FEATURES;
            c.setU64(VhostUserProtocol.SET_FEATURES, features | VhostUserProtocol.F_LOG_ALL);
            c.setState(VhostUserProtocol.SET_VRING_NUM, 0, TestFrontend.QSIZE);
            c.setState(VhostUserProtocol.SET_VRING_BASE, 0, 0);
            c.send(HostileFrontendTest.vringAddr(0, 1 /* VHOST_VRING_F_LOG */, fe.uaddr(TestFrontend.DESC),
                    fe.uaddr(TestFrontend.USED), fe.uaddr(TestFrontend.AVAIL)).withLogAddr(TestFrontend.USED));
            c.setU64(VhostUserProtocol.SET_VRING_CALL, 0, fe.call.fd());
            c.setU64(VhostUserProtocol.SET_VRING_KICK, 0, fe.kick.fd());
            c.setState(VhostUserProtocol.SET_VRING_ENABLE, 0, 1);

            fe.submit(0, VirtioBlkAbi.T_IN, 5); // data at 0x10000, status at 0x4010
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00005L, fe.data(0));
            assertTrue(dirty(log, TestFrontend.DATA), "the read's data page");
            assertTrue(dirty(log, TestFrontend.HDR), "the status byte's page");
            assertTrue(dirty(log, TestFrontend.USED), "the used ring's page");
            assertFalse(dirty(log, TestFrontend.DESC), "descriptors are only read");
            assertFalse(dirty(log, TestFrontend.AVAIL), "the avail ring is only read");
            assertFalse(dirty(log, TestFrontend.DATA + 0x1000), "a page nobody wrote");

            // logging off (the ring's stop under LOG_ALL may still log; cleared after it): the same writes set nothing
            c.setU64(VhostUserProtocol.SET_FEATURES, features);
            HostMemory.fill(log.hostAddress(), logBytes, (byte) 0);
            fe.submit(1, VirtioBlkAbi.T_IN, 6);
            assertTrue(fe.awaitCall(BOUND));
            assertEquals(0xABC00006L, fe.data(1));
            for (long a = 0; a < TestFrontend.RAM; a += 4096) {
                assertFalse(dirty(log, a), "page 0x" + Long.toHexString(a) + " logged with logging off");
            }
            assertTrue(srv.mainLoop().failures().isEmpty(), srv.mainLoop().failures().toString());
        }
    }
}
