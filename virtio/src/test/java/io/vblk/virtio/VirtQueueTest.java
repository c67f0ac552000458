package io.vblk.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import io.vblk.testkit.Bytes;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing.Used;
import io.vblk.testkit.GuestRing;

/** The split virtqueue against a driver writing guest RAM: chains, indirect tables, suppression, wrap-around. */
class VirtQueueTest {
    static final long RAM_SIZE = 1 << 20;
    static final long RING = 0x1000;
    static final long ARENA = 0x10000;
    static final long ARENA_SIZE = 0xe0000;

    GuestMemory mem;
    GuestRing drv;
    VirtQueue vq;
    final List<String> errors = new ArrayList<>();

    @BeforeEach
    void ram() {
        mem = GuestMemory.allocate(0, RAM_SIZE);
    }

    @AfterEach
    void free() {
        mem.close();
    }

    void queue(int size, long features) {
        vq = new VirtQueue("test-dev", 0, size, mem, (q, reason) -> errors.add(reason));
        drv = new GuestRing(mem, RING, size, ARENA, ARENA_SIZE);
        drv.setEventIdx((features & VirtioFeatures.EVENT_IDX) != 0);
        drv.setRearmUsedEvent(false); // these tests set used_event themselves
        vq.setFeatures(features);
        drv.configure(vq);
        assertTrue(vq.enable(), () -> "enable failed: " + errors);
    }

    /** Pops one request, echoes nothing, pushes it with {@code len} and flushes; returns the element. */
    VirtQueueElement popOne() {
        VirtQueueElement e = new VirtQueueElement();
        assertTrue(vq.pop(e), () -> "nothing popped; errors " + errors);
        return e;
    }

    @Test
    void chainOfReadableThenWritableBuffers() {
        queue(16, 0);
        byte[] hdr = Bytes.pattern(16, 1);
        byte[] data = Bytes.pattern(100, 2);
        Buf a = drv.out(hdr);
        Buf b = drv.out(data);
        Buf c = drv.in(50);
        Buf d = drv.in(30);
        int head = drv.add(a, b, c, d);
        assertFalse(vq.hasWork(), "nothing is available before avail.idx moves");
        drv.publish();
        assertTrue(vq.hasWork());

        VirtQueueElement e = popOne();
        assertEquals(head, e.head());
        assertEquals(4, e.segmentCount());
        assertEquals(2, e.readableCount());
        assertEquals(2, e.writableCount());
        assertEquals(116, e.readableBytes());
        assertEquals(80, e.writableBytes());
        Buf[] bufs = {a, b, c, d};
        for (int i = 0; i < 4; i++) {
            assertEquals(mem.translate(bufs[i].gpa(), bufs[i].len()), e.hostAddress(i));
            assertEquals(bufs[i].len(), e.length(i));
            assertEquals(bufs[i].writable(), e.isWritable(i));
        }
        byte[] got = new byte[20];
        assertEquals(20, e.copyFromReadable(10, got, 0, 20), "gather across the two readable buffers");
        assertArrayEquals(Arrays.copyOfRange(Bytes.concat(hdr, data), 10, 30), got);
        byte[] reply = Bytes.pattern(20, 9);
        assertEquals(20, e.copyToWritable(40, reply, 0, 20), "scatter across the two writable buffers");
        assertArrayEquals(Arrays.copyOfRange(reply, 0, 10), mem.read(c.gpa() + 40, 10));
        assertArrayEquals(Arrays.copyOfRange(reply, 10, 20), mem.read(d.gpa(), 10));
        assertEquals(1, vq.inUse());

        vq.push(e, 60);
        assertEquals(0, drv.usedIdx(), "push alone publishes nothing");
        vq.flush();
        assertEquals(1, drv.usedIdx());
        assertEquals(new Used(head, 60), drv.pollUsed());
        assertEquals(0, vq.inUse());
        assertFalse(vq.pop(e));
        assertEquals(-1, e.head(), "an unsuccessful pop leaves the element empty");
        assertTrue(vq.isEmpty());
        assertTrue(errors.isEmpty());
    }

    @Test
    void indirectTableAndDirectDescriptorsFollowedByAnIndirectOne() {
        queue(16, VirtioFeatures.INDIRECT_DESC);
        Buf r = drv.out(Bytes.pattern(8, 1));
        Buf w1 = drv.in(8);
        Buf w2 = drv.in(4);
        int head = drv.addIndirect(r, w1, w2);
        drv.publish();
        VirtQueueElement e = popOne();
        assertEquals(head, e.head());
        assertEquals(3, e.segmentCount());
        assertEquals(1, e.readableCount());
        assertEquals(mem.translate(w2.gpa(), 4), e.hostAddress(2));

        // virtio 2.7.5.3.2: zero or more direct descriptors followed by one indirect descriptor
        Buf direct = drv.out(Bytes.pattern(12, 3));
        Buf ind = drv.out(Bytes.pattern(6, 4));
        Buf indW = drv.in(10);
        long table = drv.alloc(32, 16);
        drv.writeDesc(table, 0, ind.gpa(), ind.len(), VirtioRing.DESC_F_NEXT, 1);
        drv.writeDesc(table, 1, indW.gpa(), indW.len(), VirtioRing.DESC_F_WRITE, 0);
        int d0 = drv.takeDesc();
        int d1 = drv.takeDesc();
        drv.writeDesc(d0, direct.gpa(), direct.len(), VirtioRing.DESC_F_NEXT, d1);
        // the WRITE flag of the descriptor naming a table must be ignored
        drv.writeDesc(d1, table, 32, VirtioRing.DESC_F_INDIRECT | VirtioRing.DESC_F_WRITE, 0);
        drv.putAvail(d0);
        drv.publish();
        e = popOne();
        assertEquals(d0, e.head());
        assertEquals(3, e.segmentCount());
        assertEquals(2, e.readableCount());
        assertEquals(18, e.readableBytes());
        assertEquals(10, e.writableBytes());
        assertTrue(errors.isEmpty(), errors::toString);
    }

    @Test
    void eventIdxSuppressesKicksWhileTheDeviceIsBusyAndInterruptsAtUsedEvent() {
        queue(16, VirtioFeatures.EVENT_IDX);
        drv.add(drv.out(new byte[4]), drv.in(4));
        assertTrue(drv.kickNeeded(drv.publish()), "avail_event starts at 0: the first entry kicks");

        // the handler's loop: notifications off, pop everything
        vq.setNotification(false);
        VirtQueueElement e1 = popOne();
        assertEquals(0, drv.availEvent(), "no avail_event update while notifications are off");
        drv.add(drv.out(new byte[4]), drv.in(4));
        assertFalse(drv.kickNeeded(drv.publish()), "device busy: no kick for the second entry");
        vq.setNotification(true);
        assertEquals(2, drv.availEvent(), "re-enabling asks for a kick after what is already there");
        assertFalse(vq.isEmpty(), "the re-check finds the un-kicked entry");
        VirtQueueElement e2 = popOne();
        assertEquals(2, drv.availEvent(), "while enabled each pop moves avail_event along");
        drv.add(drv.out(new byte[4]), drv.in(4));
        assertTrue(drv.kickNeeded(drv.publish()), "idle device: kick");

        vq.push(e1, 4);
        vq.flush();
        assertTrue(vq.shouldNotify(), "the first interrupt after reset always goes out");
        assertFalse(vq.shouldNotify(), "nothing new since");
        drv.setUsedEvent(2); // "interrupt me once the entry at index 2 is used"
        vq.push(e2, 4);
        vq.flush();
        assertFalse(vq.shouldNotify(), "used.idx 2 has not passed used_event 2");
        VirtQueueElement e3 = popOne();
        vq.push(e3, 4);
        vq.flush();
        assertTrue(vq.shouldNotify(), "entry 2 used: used.idx 3 passes used_event");
        drv.setNoInterrupt(true);
        drv.add(drv.out(new byte[4]), drv.in(4));
        drv.publish();
        drv.setUsedEvent(3);
        vq.push(popOne(), 4);
        vq.flush();
        assertTrue(vq.shouldNotify(), "with EVENT_IDX the NO_INTERRUPT flag is ignored");
        assertEquals(0, drv.usedFlags(), "with EVENT_IDX the device leaves used.flags 0");
    }

    @Test
    void noInterruptAndNoNotifyFlagsWithoutEventIdx() {
        queue(8, 0);
        vq.setNotification(false);
        assertEquals(VirtioRing.USED_F_NO_NOTIFY, drv.usedFlags());
        drv.add(drv.out(new byte[4]), drv.in(4));
        assertFalse(drv.kickNeeded(drv.publish()));
        vq.setNotification(true);
        assertEquals(0, drv.usedFlags());
        assertFalse(vq.isEmpty());

        drv.setNoInterrupt(true);
        vq.push(popOne(), 4);
        vq.flush();
        assertFalse(vq.shouldNotify(), "VRING_AVAIL_F_NO_INTERRUPT");
        drv.setNoInterrupt(false);
        drv.add(drv.out(new byte[4]), drv.in(4));
        assertTrue(drv.kickNeeded(drv.publish()));
        vq.push(popOne(), 4);
        vq.flush();
        assertTrue(vq.shouldNotify());
        assertFalse(vq.shouldNotify(), "no new used entries: no interrupt");
    }

    @ParameterizedTest(name = "eventIdx={0}")
    @ValueSource(booleans = {false, true})
    void indicesWrapFrom65535To0(boolean eventIdx) {
        queue(8, eventIdx ? VirtioFeatures.EVENT_IDX : 0);
        drv.startAt(65530);
        vq.setLastAvailIdx(65530);
        vq.setUsedIdx(65530);
        List<Integer> usedSeen = new ArrayList<>();
        for (int i = 0; i < 9; i++) {
            byte[] payload = Bytes.pattern(8, i);
            Buf in = drv.in(8);
            int head = drv.add(drv.out(payload), in);
            drv.publish();
            VirtQueueElement e = popOne();
            assertEquals(head, e.head());
            byte[] b = new byte[8];
            e.copyFromReadable(0, b, 0, 8);
            e.copyToWritable(0, b, 0, 8);
            vq.push(e, 8);
            vq.flush();
            usedSeen.add(drv.usedIdx());
            assertEquals(new Used(head, 8), drv.pollUsed());
            assertArrayEquals(payload, mem.read(in.gpa(), 8));
        }
        assertEquals(List.of(65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3), usedSeen);
        assertEquals(3, vq.lastAvailIdx());

        // a batch straddling the wrap of the ring slots and interrupts at used_event across 16-bit wrap
        drv.startAt(65534);
        vq.setLastAvailIdx(65534);
        vq.setUsedIdx(65534);
        drv.setUsedEvent(65535);
        int[] heads = new int[4];
        for (int i = 0; i < 4; i++) {
            heads[i] = drv.add(drv.out(new byte[2]), drv.in(2));
        }
        drv.publish();
        VirtQueueElement[] es = new VirtQueueElement[4];
        for (int i = 0; i < 4; i++) {
            es[i] = popOne();
            assertEquals(heads[i], es[i].head());
        }
        assertFalse(vq.pop(new VirtQueueElement()));
        vq.push(es[0], 0);
        vq.flush();
        assertEquals(65535, drv.usedIdx());
        if (eventIdx) {
            vq.shouldNotify(); // first after restore: unconditional
            vq.push(es[1], 0);
            vq.flush();
            assertEquals(0, drv.usedIdx(), "65535 -> 0");
            assertTrue(vq.shouldNotify(), "entry 65535 used: used_event reached across the wrap");
        } else {
            vq.push(es[1], 0);
            vq.flush();
            assertEquals(0, drv.usedIdx());
        }
        vq.push(es[2], 0);
        vq.push(es[3], 0);
        vq.flush();
        assertEquals(2, drv.usedIdx());
        for (int i = 0; i < 4; i++) {
            assertEquals(heads[i], drv.pollUsed().id());
        }
        assertNull(drv.pollUsed());
        assertTrue(errors.isEmpty(), errors::toString);
    }

    @ParameterizedTest(name = "eventIdx={0}")
    @ValueSource(booleans = {false, true})
    void theDisablePopReenableRecheckLoopLosesNoKick(boolean eventIdx) {
        queue(8, eventIdx ? VirtioFeatures.EVENT_IDX : 0);
        drv.add(drv.out(new byte[1]), drv.in(1));
        drv.publish();
        int popped = 0;
        boolean lateAdded = false;
        do {
            vq.setNotification(false);
            VirtQueueElement e = new VirtQueueElement();
            while (vq.pop(e)) {
                popped++;
                vq.push(e, 0);
            }
            if (!lateAdded) {
                // the driver adds one after the last pop, before notifications are back on: it does not kick
                drv.add(drv.out(new byte[1]), drv.in(1));
                assertFalse(drv.kickNeeded(drv.publish()));
                lateAdded = true;
            }
            vq.setNotification(true);
        } while (!vq.isEmpty());
        vq.flush();
        assertEquals(2, popped, "the re-check found the request that came without a kick");
        drv.add(drv.out(new byte[1]), drv.in(1));
        assertTrue(drv.kickNeeded(drv.publish()), "notifications are on again afterwards");
    }

    @Test
    void savedAndRestoredRingBaseContinuesWhereItLeftOff() {
        queue(8, 0);
        int[] heads = new int[3];
        for (int i = 0; i < 3; i++) {
            heads[i] = drv.add(drv.out(new byte[1]), drv.in(1));
        }
        drv.publish();
        vq.push(popOne(), 1);
        vq.flush();
        int base = vq.lastAvailIdx();
        assertEquals(1, base);

        // another device instance (a vhost-user backend taking over) resumes at the saved base
        VirtQueue other = new VirtQueue("backend", 0, 8, mem, (q, r) -> errors.add(r));
        drv.configure(other);
        other.setLastAvailIdx(base);
        other.setUsedIdx(drv.usedIdx());
        assertTrue(other.enable());
        VirtQueueElement e = new VirtQueueElement();
        assertTrue(other.pop(e));
        assertEquals(heads[1], e.head(), "continues with the second chain, not the first");
        assertEquals(2, other.lastAvailIdx());
    }

    @Test
    void aRingInASharedMemfdIsServedThroughTheOtherMapping() {
        try (GuestMemory front = new GuestMemory(RamRegion.memfd("vblk-ring", 0, RAM_SIZE));
             GuestMemory back = new GuestMemory(RamRegion.mapShared(0, RAM_SIZE, front.regions().get(0).fd(), 0))) {
            GuestRing d = new GuestRing(front, RING, 8, ARENA, ARENA_SIZE);
            VirtQueue q = new VirtQueue("vhost-user-backend", 0, 8, back, (x, r) -> errors.add(r));
            d.configure(q);
            assertTrue(q.enable());
            Buf in = d.in(5);
            int head = d.add(d.out("hello".getBytes()), in);
            d.publish();
            VirtQueueElement e = new VirtQueueElement();
            assertTrue(q.pop(e));
            byte[] b = new byte[5];
            e.copyFromReadable(0, b, 0, 5);
            e.copyToWritable(0, b, 0, 5);
            q.push(e, 5);
            q.flush();
            assertEquals(new Used(head, 5), d.pollUsed());
            assertEquals("hello", new String(front.read(in.gpa(), 5)));
        }
    }

    @Test
    void popAndPushAllocateNothingPerRequest() {
        queue(256, VirtioFeatures.EVENT_IDX | VirtioFeatures.INDIRECT_DESC);
        Buf r = drv.out(new byte[16]);
        Buf w = drv.in(512);
        drv.writeDesc(0, r.gpa(), r.len(), VirtioRing.DESC_F_NEXT, 1);
        drv.writeDesc(1, w.gpa(), w.len(), VirtioRing.DESC_F_WRITE, 0);
        VirtQueueElement e = new VirtQueueElement(4);
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        int idx = 0;
        for (int round = 0; round < 2; round++) {
            long before = mx.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 50_000; i++) {
                mem.writeU16(drv.avail + VirtioRing.AVAIL_RING + 2L * (idx % 256), 0); // raw: allocation-free
                idx = (idx + 1) & 0xffff;
                drv.setAvailIdxRaw(idx);
                vq.setNotification(false);
                while (vq.pop(e)) {
                    vq.push(e, 512);
                }
                vq.setNotification(true);
                vq.isEmpty();
                vq.flush();
                vq.shouldNotify();
            }
            long allocated = mx.getCurrentThreadAllocatedBytes() - before;
            if (round == 1) {
                assertTrue(allocated < 4096, "allocated " + allocated + " bytes over 50000 requests");
            }
        }
        assertTrue(errors.isEmpty(), errors::toString);
    }

    @Test
    void aChainUsingDescriptorsTheDeviceStillOwnsBreaksTheQueue() {
        queue(2, 0);
        drv.add(drv.in(1));
        drv.add(drv.in(1));
        drv.publish();
        popOne();
        popOne();
        drv.putAvail(0); // re-offers a chain the device still owns: a third chain in a queue of two
        drv.publish();
        assertFalse(vq.pop(new VirtQueueElement()));
        assertEquals(1, errors.size());
        assertTrue(errors.get(0).contains("in use"), errors.get(0));
    }

    @Test
    void enableRefusesBadRingConfiguration() {
        vq = new VirtQueue("test-dev", 0, 8, mem, (q, reason) -> errors.add(reason));
        vq.setSize(6);
        assertFalse(vq.enable());
        assertTrue(errors.get(0).contains("power of two"), errors.toString());
        assertTrue(vq.isBroken());

        vq.reset();
        vq.setDescAddr(RING + 8);
        vq.setAvailAddr(RING + 0x200);
        vq.setUsedAddr(RING + 0x400);
        assertFalse(vq.enable());
        assertTrue(errors.get(1).contains("misaligned"), errors.toString());

        vq.reset();
        vq.setDescAddr(RING);
        vq.setAvailAddr(RING + 0x200);
        vq.setUsedAddr(RAM_SIZE - 16);
        assertFalse(vq.enable());
        assertTrue(errors.get(2).contains("outside RAM"), errors.toString());

        vq.reset();
        assertFalse(vq.isBroken(), "reset clears the breakage");
        GuestRing d = new GuestRing(mem, RING, 8, ARENA, ARENA_SIZE);
        d.configure(vq);
        assertTrue(vq.enable());
        assertNotNull(vq.describe());
    }
}
