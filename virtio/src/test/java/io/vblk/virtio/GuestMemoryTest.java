package io.vblk.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

import io.netty.buffer.ByteBuf;
import io.vblk.testkit.Bytes;

class GuestMemoryTest {
    private static final long LOW = 0x0;
    private static final long LOW_SIZE = 0x10_0000;   // 1 MiB at 0
    private static final long HIGH = 0x1_0000_0000L;  // 64 KiB at 4 GiB (a hole in between)
    private static final long HIGH_SIZE = 0x1_0000;

    private static GuestMemory twoRegions() {
        return new GuestMemory(RamRegion.anonymous(HIGH, HIGH_SIZE), RamRegion.anonymous(LOW, LOW_SIZE));
    }

    @Test
    void translateFindsTheRegionAndRejectsEverythingElseWithoutThrowing() {
        try (GuestMemory mem = twoRegions()) {
            RamRegion low = mem.regions().get(0);
            RamRegion high = mem.regions().get(1);
            assertEquals(LOW, low.gpa(), "regions are sorted by address");
            assertEquals(low.hostAddress() + 0x1234, mem.translate(0x1234, 16));
            assertEquals(high.hostAddress() + 8, mem.translate(HIGH + 8, 8));
            assertEquals(low.hostAddress() + 0x20, mem.translate(0x20, 4), "back to the first region (cache miss)");
            assertEquals(low.hostAddress() + LOW_SIZE - 1, mem.translate(LOW_SIZE - 1, 1), "last byte");
            assertEquals(low.hostAddress(), mem.translate(0, 0), "empty range inside RAM");

            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(LOW_SIZE - 1, 2), "runs past the end");
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(LOW_SIZE, 0), "empty range outside RAM");
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(0x8000_0000L, 4), "the hole");
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(HIGH - 4, 8), "from the hole into a region");
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(HIGH + HIGH_SIZE - 4, 8));
            assertEquals(GuestMemory.ERR_BAD_RANGE, mem.translate(0x10, -1), "negative length");
            assertEquals(GuestMemory.ERR_BAD_RANGE, mem.translate(-8L, 16), "wraps around 2^64");
            assertEquals(GuestMemory.ERR_BAD_RANGE, mem.translate(0x8000_0000_0000_0010L, 0x7fff_ffff_ffff_fff8L));
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(0x10, Long.MAX_VALUE), "huge, but no wrap");
            assertEquals(GuestMemory.ERR_NOT_RAM, mem.translate(-16L, 16), "top of the address space is no RAM");
            assertTrue(mem.translate(0x10, 0x10_0000 + 1) < 0);
        }
    }

    @Test
    void adjacentRegionsAreSeparateForTranslateButBulkCopiesSpanThem() {
        try (GuestMemory mem = new GuestMemory(RamRegion.anonymous(0, 4096), RamRegion.anonymous(4096, 4096))) {
            assertTrue(mem.translate(4090, 12) < 0, "translate needs one region (host addresses are not contiguous)");
            byte[] data = Bytes.pattern(100, 3);
            mem.write(4050, data);
            assertArrayEquals(data, mem.read(4050, 100));
            assertEquals(data[46] & 0xff, mem.readU8(4096));
        }
    }

    @Test
    void littleEndianAccessorsAndCheckedFailures() {
        try (GuestMemory mem = twoRegions()) {
            mem.writeU16(0x100, 0xbeef);
            mem.writeU32(0x104, 0xdead_beefL);
            mem.writeU64(0x108, 0x0102_0304_0506_0708L);
            assertEquals(0xbeef, mem.readU16(0x100));
            assertEquals(0xdead_beefL, mem.readU32(0x104), "u32 reads back unsigned");
            assertEquals(0x0102_0304_0506_0708L, mem.readU64(0x108));
            assertArrayEquals(new byte[] {(byte) 0xef, (byte) 0xbe}, mem.read(0x100, 2), "little-endian in RAM");
            assertEquals(8, mem.readU8(0x108));

            GuestMemoryException e = assertThrows(GuestMemoryException.class, () -> mem.readU32(LOW_SIZE - 2));
            assertEquals(LOW_SIZE - 2, e.gpa());
            assertThrows(GuestMemoryException.class, () -> mem.writeU64(0x8000_0000L, 1));
            assertThrows(GuestMemoryException.class, () -> mem.readU16(-1L));
        }
    }

    @Test
    void aFailedBulkWriteChangesNothing() {
        try (GuestMemory mem = twoRegions()) {
            byte[] before = mem.read(LOW_SIZE - 64, 64);
            assertThrows(GuestMemoryException.class, () -> mem.write(LOW_SIZE - 32, new byte[64]));
            assertArrayEquals(before, mem.read(LOW_SIZE - 64, 64));
            assertThrows(GuestMemoryException.class, () -> mem.read(-10L, new byte[20], 0, 20));
        }
    }

    @Test
    void nettyViewIsGuestRamAndLittleEndianWithTheLeAccessors() {
        try (GuestMemory mem = twoRegions()) {
            mem.writeU32(HIGH + 16, 0x1122_3344L);
            ByteBuf view = mem.view(HIGH + 16, 64);
            assertEquals(64, view.readableBytes());
            assertEquals(0x1122_3344, view.getIntLE(0));
            assertEquals(0x4433_2211, view.getInt(0), "ByteBuf's default order is big-endian");
            view.setShortLE(8, 0xabcd);
            assertEquals(0xabcd, mem.readU16(HIGH + 24), "writes go straight to guest RAM");
            view.release();
            assertEquals(0x1122_3344L, mem.readU32(HIGH + 16), "releasing the view frees nothing");
            assertThrows(GuestMemoryException.class, () -> mem.view(LOW_SIZE - 8, 16));
        }
    }

    @Test
    void overlappingRegionsAreRefused() {
        RamRegion a = RamRegion.anonymous(0, 8192);
        RamRegion b = RamRegion.anonymous(4096, 8192);
        try {
            assertThrows(IllegalArgumentException.class, () -> new GuestMemory(a, b));
        } finally {
            a.close();
            b.close();
        }
        assertThrows(IllegalArgumentException.class, () -> new RamRegion(-4096L, 8192, 1, null), "wraps");
    }

    @Test
    void aMemfdRegionCanBeMappedAgainAndBothMappingsShareThePages() {
        try (GuestMemory front = new GuestMemory(RamRegion.memfd("vblk-test-ram", 0, 1 << 20))) {
            RamRegion r = front.regions().get(0);
            assertTrue(r.fd() >= 0);
            try (GuestMemory back = new GuestMemory(RamRegion.mapShared(0, 1 << 20, r.fd(), 0))) {
                assertFalse(back.regions().get(0).hostAddress() == r.hostAddress(), "a second mapping");
                front.writeU64(0x400, 0x5555_aaaa_1234_5678L);
                assertEquals(0x5555_aaaa_1234_5678L, back.readU64(0x400));
                back.writeU16(0x800, 0x4242);
                assertEquals(0x4242, front.readU16(0x800));
            }
        }
    }

    @Test
    void hostMemoryIsUsable() {
        HostMemory.requireUnsafe(); // would throw with a clear message without sun.misc.Unsafe
    }
}
