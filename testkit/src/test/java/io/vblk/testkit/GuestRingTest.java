package io.vblk.testkit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing.Used;
import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtQueueElement;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * The kit's driver side against the device's {@link VirtQueue}: what
 * {@link GuestRing} writes is what the device reads (direct and indirect
 * chains, avail_event and used_event), and the layouts it computes are
 * {@link VirtioRing}'s.
 */
class GuestRingTest {
    static final long RING = 0x1000;
    static final long ARENA = 0x10000;
    static final int SIZE = 16;

    final GuestMemory mem = GuestMemory.allocate(0, 1 << 20);
    final List<String> errors = new ArrayList<>();

    @AfterEach
    void free() {
        mem.close();
    }

    VirtQueue device(GuestRing ring, long features) {
        VirtQueue vq = new VirtQueue("kit-test", 0, SIZE, mem, (q, reason) -> errors.add(reason));
        vq.setFeatures(features);
        ring.configure(vq);
        assertTrue(vq.enable(), () -> "enable failed: " + errors);
        return vq;
    }

    @Test
    void contiguousLayoutIsTheSplitRingOfTheSpecification() {
        GuestRing ring = new GuestRing(mem, RING, SIZE);
        assertEquals(RING, ring.desc);
        assertEquals(RING + VirtioRing.DESC_SIZE * SIZE, ring.avail);
        assertEquals(0, ring.used % 4, "used ring 4-byte aligned");
        assertTrue(ring.used >= ring.avail + VirtioRing.availSize(SIZE));
        assertEquals(ring.used + VirtioRing.usedSize(SIZE), ring.ringEnd());
        assertEquals(ring.ringEnd() - RING, GuestRing.footprint(SIZE));
    }

    @Test
    void directAndIndirectChainsReachTheDeviceAndComeBack() {
        GuestRing ring = new GuestRing(mem, RING, SIZE, ARENA, 0x10000);
        VirtQueue vq = device(ring, VirtioFeatures.VERSION_1 | VirtioFeatures.INDIRECT_DESC);
        byte[] hdr = BlkHeaders.outhdr(VirtioBlkAbi.T_OUT, 0x1234_5678_9aL);
        Buf w = ring.in(8);
        int h1 = ring.add(ring.out(hdr), w);
        int h2 = ring.addIndirect(ring.out(Bytes.pattern(20, 3)), ring.in(4), ring.in(1));
        int[] oldNew = ring.publish();
        assertArrayEquals(new int[] {0, 2}, oldNew);
        assertTrue(ring.kickNeeded(oldNew), "no suppression asked for: kick");

        VirtQueueElement e = new VirtQueueElement();
        assertTrue(vq.pop(e));
        assertEquals(h1, e.head());
        byte[] got = new byte[hdr.length];
        e.copyFromReadable(0, got, 0, got.length);
        assertArrayEquals(hdr, got, "the header as the device reads it");
        e.copyToWritable(0, Bytes.pattern(8, 9), 0, 8);
        vq.push(e, 8);
        VirtQueueElement e2 = new VirtQueueElement();
        assertTrue(vq.pop(e2));
        assertEquals(h2, e2.head());
        assertEquals(1, e2.readableCount());
        assertEquals(2, e2.writableCount());
        assertEquals(20, e2.readableBytes());
        vq.push(e2, 5);
        vq.flush();
        assertTrue(errors.isEmpty(), errors::toString);

        assertEquals(new Used(h1, 8), ring.pollUsed());
        byte[] back = new byte[8];
        mem.read(w.gpa(), back, 0, 8);
        assertArrayEquals(Bytes.pattern(8, 9), back);
        assertEquals(new Used(h2, 5), ring.pollUsed());
        assertNull(ring.pollUsed());
    }

    @Test
    void eventIndexFieldsAreWhereTheDeviceLooks() {
        GuestRing ring = new GuestRing(mem, RING, SIZE, ARENA, 0x10000);
        ring.setEventIdx(true);
        ring.setRearmUsedEvent(false);
        VirtQueue vq = device(ring, VirtioFeatures.VERSION_1 | VirtioFeatures.EVENT_IDX);
        ring.add(ring.in(4));
        int[] oldNew = ring.publish();
        assertTrue(ring.kickNeeded(oldNew), "avail_event 0 is crossed by 0 -> 1");
        vq.setNotification(true); // device: avail_event = the next entry it has not seen (1)
        assertEquals(1, ring.availEvent());
        ring.add(ring.in(4));
        ring.add(ring.in(4));
        int[] second = ring.publish();
        assertTrue(ring.kickNeeded(second), "1 -> 3 crosses avail_event 1");

        ring.setUsedEvent(5);
        assertEquals(5, mem.readU16(ring.avail + VirtioRing.usedEventOffset(SIZE)), "used_event after the ring");
        VirtQueueElement e = new VirtQueueElement();
        assertTrue(vq.pop(e));
        vq.push(e, 0);
        vq.flush();
        assertEquals(1, ring.usedIdx());
        assertTrue(ring.moreUsed());
        ring.enableInterrupts(); // used_event = last reaped
        assertEquals(0, mem.readU16(ring.avail + VirtioRing.usedEventOffset(SIZE)));
        assertEquals(new Used(0, 0), ring.pollUsed());
        assertEquals(0, mem.readU16(ring.avail + VirtioRing.usedEventOffset(SIZE)), "no re-arm when told not to");
        ring.setRearmUsedEvent(true);
        assertTrue(vq.pop(e));
        vq.push(e, 0);
        vq.flush();
        ring.pollUsed();
        assertEquals(2, mem.readU16(ring.avail + VirtioRing.usedEventOffset(SIZE)), "re-armed for the next entry");
    }

    @Test
    void ringsAtSeparateAddressesAsAVhostUserFrontEndPlacesThem() {
        GuestRing ring = GuestRing.at(mem, SIZE, 0x1000, 0x2000, 0x3000);
        VirtQueue vq = device(ring, VirtioFeatures.VERSION_1);
        ring.add(new Buf(0x8000, 16, false), new Buf(0x9000, 1, true));
        ring.publish();
        VirtQueueElement e = new VirtQueueElement();
        assertTrue(vq.pop(e));
        assertEquals(2, e.segmentCount());
        vq.push(e, 1);
        vq.flush();
        assertEquals(1, ring.usedIdx());
        assertEquals(0, ring.pollUsed().id());
    }
}
