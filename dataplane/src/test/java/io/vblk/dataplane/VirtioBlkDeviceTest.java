package io.vblk.dataplane;

import static io.vblk.virtio.VirtioPciRegs.*;
import static io.vblk.virtio.blk.VirtioBlkAbi.SECTOR;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import io.vblk.block.BlkDebugDriver;
import io.vblk.dataplane.BlkMachine.Serving;
import io.vblk.dataplane.BlkMachine.Spec;
import io.vblk.testkit.BlkDriver.Layout;
import io.vblk.testkit.BlkDriver.Req;
import io.vblk.testkit.BlkDriver;
import io.vblk.testkit.Bytes;
import io.vblk.testkit.GuestRing;
import io.vblk.testkit.Irqchip;
import io.vblk.testkit.PciDriver;
import io.vblk.virtio.VirtioFeatures;
import io.vblk.virtio.VirtioRing;
import io.vblk.virtio.VirtioStatus;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * The virtio-blk device driven only as a guest drives it: PCI
 * configuration accesses, BAR reads and writes, guest RAM and interrupts
 * (through {@link PciDriver}, {@link BlkDriver} and {@link Irqchip}). The
 * disk is a raw node over a file in a temporary directory, compared byte for
 * byte with what the guest expects. Most tests run three ways: queues and
 * backend in the main loop (direct kicks), in one IOThread (ioeventfds and
 * irqfds), and split so that a queue's requests and completions cross between
 * two IOThreads.
 *
 * <p>Covered: PCI identity, offered features and config space; SeaBIOS's and
 * Linux's initialisation; every request type checked against the disk; a
 * read-only disk; requests past the end and misaligned; malformed chains
 * (NEEDS_RESET with a config interrupt, process unharmed, device usable after
 * reset); and a reset while requests are held in flight by a blkdebug
 * suspension (status reads 0 only after they finished, their completions are
 * not written into the rings, and the device works after re-initialisation).
 */
@Tag("concurrency")
class VirtioBlkDeviceTest {

    @TempDir
    Path dir;
    BlkMachine m;

    @AfterEach
    void teardown() {
        if (m != null) {
            m.close();
        }
    }

    BlkDriver machine(Spec spec) {
        m = new BlkMachine(spec, dir);
        return m.newDriver();
    }

    static byte[] pattern(int len, int seed) {
        byte[] b = new byte[len];
        new Random(seed).nextBytes(b);
        return b;
    }

    static byte[] slice(byte[] b, long off, int len) {
        return Arrays.copyOfRange(b, (int) off, (int) off + len);
    }

    static void assertAll(byte[] b, byte value, String what) {
        for (int i = 0; i < b.length; i++) {
            if (b[i] != value) {
                throw new AssertionError(what + ": byte " + i + " is 0x" + Integer.toHexString(b[i] & 0xff)
                        + ", expected 0x" + Integer.toHexString(value & 0xff));
            }
        }
    }

    /** The queue contexts are the ones the serving mode names (a host-side check that the mode is real). */
    void assertServedWhereExpected(int queues) {
        if (m.dataplane != null) {
            // DRIVER_OK written by a vCPU takes effect in the main loop, which starts the dataplane there
            BlkMachine.spin("the dataplane started", m.dataplane::isStarted);
        }
        for (int q = 0; q < queues; q++) {
            assertSame(m.expectedQueueContext(q), m.dev.queueContext(q), "vq" + q + " served in its mode's context");
        }
        assertSame(m.serving() == Serving.DIRECT ? m.loop.context() : m.io[0].context(), m.blk.context(),
                "backend context");
    }

    // ------------------------------------------------------------------ identity, features, config

    @Test
    void pciIdentityOfferedFeaturesAndConfigSpace() {
        BlkDriver g = machine(new Spec().queues(4).queueSize(128).diskBytes(3L << 20));
        PciDriver pci = g.pci;
        assertEquals(0x1af4, pci.cfg16(VENDOR_ID));
        assertEquals(0x1042, pci.cfg16(DEVICE_ID), "modern virtio-blk");
        assertEquals(1, pci.cfg8(REVISION_ID));
        assertEquals(0x1af4, pci.cfg16(SUBSYSTEM_VENDOR_ID));
        assertEquals(2, pci.cfg16(SUBSYSTEM_ID));
        assertEquals(0x01, pci.cfg8(CLASS_PROG + 2), "mass storage");
        assertEquals(5, pci.msixVectors, "a vector per queue plus config");

        long f = pci.deviceFeatures();
        long expected = VirtioFeatures.VERSION_1 | VirtioFeatures.INDIRECT_DESC | VirtioFeatures.EVENT_IDX
                | VirtioBlkAbi.F_SIZE_MAX | VirtioBlkAbi.F_SEG_MAX | VirtioBlkAbi.F_BLK_SIZE | VirtioBlkAbi.F_FLUSH
                | VirtioBlkAbi.F_TOPOLOGY | VirtioBlkAbi.F_CONFIG_WCE | VirtioBlkAbi.F_MQ | VirtioBlkAbi.F_DISCARD
                | VirtioBlkAbi.F_WRITE_ZEROES;
        assertEquals(expected, f, "offered features (no RO on a writable disk)");

        assertEquals(3L * 2048, pci.deviceConfig(VirtioBlkAbi.CFG_CAPACITY, 8), "capacity in 512-byte sectors");
        assertEquals(VirtioBlkAbi.SIZE_MAX, pci.deviceConfig(VirtioBlkAbi.CFG_SIZE_MAX, 4), "size_max");
        assertEquals(126, pci.deviceConfig(VirtioBlkAbi.CFG_SEG_MAX, 4), "seg_max: queue size minus header and status");
        assertEquals(512, pci.deviceConfig(VirtioBlkAbi.CFG_BLK_SIZE, 4), "blk_size");
        assertEquals(0, pci.deviceConfig(VirtioBlkAbi.CFG_PHYSICAL_BLOCK_EXP, 1), "physical_block_exp");
        assertEquals(0, pci.deviceConfig(VirtioBlkAbi.CFG_ALIGNMENT_OFFSET, 1), "alignment_offset");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_MIN_IO_SIZE, 2), "min_io_size");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1), "writeback");
        assertEquals(4, pci.deviceConfig(VirtioBlkAbi.CFG_NUM_QUEUES, 2), "num_queues");
        assertEquals(VirtioBlkAbi.MAX_DISCARD_SECTORS, pci.deviceConfig(VirtioBlkAbi.CFG_MAX_DISCARD_SECTORS, 4), "max_discard_sectors");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_MAX_DISCARD_SEG, 4), "max_discard_seg");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_DISCARD_SECTOR_ALIGNMENT, 4), "discard_sector_alignment");
        assertEquals(VirtioBlkAbi.MAX_DISCARD_SECTORS, pci.deviceConfig(VirtioBlkAbi.CFG_MAX_WRITE_ZEROES_SECTORS, 4), "max_write_zeroes_sectors");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_MAX_WRITE_ZEROES_SEG, 4), "max_write_zeroes_seg");
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_WRITE_ZEROES_MAY_UNMAP, 1), "write_zeroes_may_unmap");
        assertEquals(4, pci.common(COMMON_NUMQ, 2));
        pci.selectQueue(3);
        assertEquals(128, pci.common(COMMON_Q_SIZE, 2));

        // config writes: only writeback, and only once CONFIG_WCE is negotiated
        g.initLinux(BlkDriver.LINUX_FEATURES);
        int gen = (int) pci.common(COMMON_CFGGENERATION, 1);
        pci.writeDeviceConfig(VirtioBlkAbi.CFG_CAPACITY, 4, 0);
        assertEquals(3L * 2048, pci.deviceConfig(VirtioBlkAbi.CFG_CAPACITY, 8), "capacity is read-only");
        pci.writeDeviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1, 0);
        assertEquals(0, pci.deviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1), "writethrough selected");
        assertTrue((int) pci.common(COMMON_CFGGENERATION, 1) != gen, "a config change bumps the generation");
        byte[] data = pattern(4096, 7);
        Req w = g.write(0, 0, 8, data, Layout.SIMPLE, new Random(1));
        g.run(w);
        assertEquals(VirtioBlkAbi.S_OK, w.status(), "writethrough (FUA) write");
        assertArrayEquals(data, m.diskRange(8 * SECTOR, 4096));
        g.reset();
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1), "reset restores writeback");
        g.initSeaBios();
        pci.writeDeviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1, 0);
        assertEquals(1, pci.deviceConfig(VirtioBlkAbi.CFG_WRITEBACK, 1), "writeback is read-only without CONFIG_WCE");
    }

    // ------------------------------------------------------------------ initialisation

    @ParameterizedTest
    @EnumSource(Serving.class)
    void seaBiosInitReadsTheMbrByPollingWithoutInterrupts(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving).queueSize(1024));
        g.pci.selectQueue(0);
        assertEquals(1024, g.pci.common(COMMON_Q_SIZE, 2), "the device offers 1024 entries");
        g.initSeaBios();
        assertEquals(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK
                | VirtioStatus.DRIVER_OK, g.pci.status());
        g.pci.selectQueue(0);
        assertEquals(256, g.pci.common(COMMON_Q_SIZE, 2), "SeaBIOS caps the queue at 256");
        assertEquals(m.spec.diskBytes / SECTOR, g.capacity);
        assertFalse(m.transport.msixEnabled());
        assertServedWhereExpected(1);

        Random r = new Random(3);
        Req mbr = g.read(0, 0, 0, SECTOR, Layout.SIMPLE, r);
        g.run(mbr);
        assertEquals(VirtioBlkAbi.S_OK, mbr.status());
        assertEquals(SECTOR + 1, mbr.used.len(), "data plus status byte");
        assertArrayEquals(slice(m.initialContent, 0, SECTOR), mbr.in(), "the MBR as on disk");
        for (int i = 0; i < 20; i++) {
            long sector = r.nextInt(8000);
            int n = 1 + r.nextInt(16);
            Req rd = g.read(0, 0, sector, n * SECTOR, Layout.SIMPLE, r);
            g.run(rd);
            assertEquals(VirtioBlkAbi.S_OK, rd.status());
            assertArrayEquals(slice(m.initialContent, sector * SECTOR, n * SECTOR), rd.in(), "sectors " + sector);
        }
        assertEquals(21, g.vqs[0].usedIdx());
        m.settleMain();
        assertEquals(0, m.irq.intxCount(), "VRING_AVAIL_F_NO_INTERRUPT: no interrupt for a polling driver");
        for (int v = 0; v < g.pci.msixVectors; v++) {
            assertEquals(0, m.irq.count(v), "no MSI without MSI-X");
        }
    }

    @ParameterizedTest
    @EnumSource(Serving.class)
    void linuxInitWithMsixMultiqueueAndEventIdx(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving).queues(4).queueSize(64));
        g.initLinux(BlkDriver.LINUX_FEATURES);
        assertTrue(g.has(VirtioFeatures.EVENT_IDX) && g.has(VirtioFeatures.INDIRECT_DESC) && g.has(VirtioBlkAbi.F_MQ));
        assertEquals(4, g.vqs.length);
        assertTrue(m.transport.msixEnabled());
        assertServedWhereExpected(4);
        for (int q = 0; q < 4; q++) {
            assertEquals(q, m.transport.queueVector(q));
        }
        assertEquals(4, m.transport.configVector());

        Random r = new Random(5);
        for (int round = 0; round < 3; round++) {
            for (int q = 0; q < 4; q++) {
                long before = m.irq.count(q);
                g.vqs[q].enableInterrupts(); // used_event = the next entry: the device must interrupt for it
                long sector = 64L * (4 * round + q);
                byte[] data = pattern(8 * SECTOR, 100 * round + q);
                Req w = g.write(q, 0, sector, data, Layout.SCATTERED, r);
                Req rd = g.read(q, 1, sector + 100, 4 * SECTOR, Layout.INDIRECT, r);
                g.run(w, rd);
                assertEquals(VirtioBlkAbi.S_OK, w.status());
                assertEquals(1, w.used.len());
                assertEquals(VirtioBlkAbi.S_OK, rd.status());
                assertArrayEquals(slice(m.initialContent, (sector + 100) * SECTOR, 4 * SECTOR), rd.in());
                assertArrayEquals(data, m.diskRange(sector * SECTOR, data.length));
                int vq = q;
                BlkMachine.spin("vq" + q + " interrupted on its own vector", () -> m.irq.count(vq) > before);
                // EVENT_IDX: a device that sleeps asks to be kicked for the next entry it has not seen; an
                // IOThread may still be busy-polling the ring (notifications off), which leaves it behind
                int availEvent = g.vqs[q].availEvent();
                if (serving == Serving.DIRECT) {
                    assertEquals(g.vqs[q].availIdx(), availEvent, "avail_event");
                } else {
                    assertTrue(((g.vqs[q].availIdx() - availEvent) & 0xffff) <= 2 * (4 * round + q + 1),
                            "avail_event " + availEvent + " within what was published (" + g.vqs[q].availIdx() + ")");
                }
            }
        }
        // used_event far ahead: the device completes without interrupting (EVENT_IDX suppression honoured)
        GuestRing vq0 = g.vqs[0];
        vq0.setUsedEvent((vq0.lastUsed() + 100) & 0xffff);
        m.settleAll();
        long quiet = m.irq.count(0);
        Req silent = g.read(0, 0, 3, SECTOR, Layout.SIMPLE, r);
        g.submit(silent);
        BlkMachine.spin("used.idx moves", () -> vq0.usedIdx() != vq0.lastUsed());
        m.settleAll();
        assertEquals(quiet, m.irq.count(0), "no interrupt before used_event is reached");
        g.await(silent);
        assertEquals(VirtioBlkAbi.S_OK, silent.status());
        assertEquals(0, m.irq.count(4), "no config interrupt");
        assertEquals(0, m.irq.intxCount(), "no INTx with MSI-X on");
    }

    // ------------------------------------------------------------------ request types

    @ParameterizedTest
    @EnumSource(Serving.class)
    void everyRequestTypeAgainstTheDisk(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving).queues(2).serial("SERIAL-0123456789ABC"));
        g.initLinux(BlkDriver.LINUX_FEATURES);
        byte[] model = m.initialContent.clone();
        Random r = new Random(11);
        Layout[] layouts = {Layout.SIMPLE, Layout.SCATTERED, Layout.INDIRECT,
            new Layout(true, 4, 4, true, true)};

        for (int i = 0; i < layouts.length; i++) {
            int q = i % 2;
            Layout l = layouts[i];
            // IN
            long sector = 17 + 40L * i;
            Req rd = g.read(q, 0, sector, 9 * SECTOR, l, r);
            g.run(rd);
            assertEquals(VirtioBlkAbi.S_OK, rd.status(), l.toString());
            assertEquals(9 * SECTOR + 1, rd.used.len());
            assertArrayEquals(slice(model, sector * SECTOR, 9 * SECTOR), rd.in(), "read with " + l);
            // OUT, then read back through the device
            byte[] data = pattern(5 * SECTOR, i);
            Req w = g.write(q, 0, 1000 + 10L * i, data, l, r);
            g.run(w);
            assertEquals(VirtioBlkAbi.S_OK, w.status());
            assertEquals(1, w.used.len(), "a write writes only the status byte");
            System.arraycopy(data, 0, model, (1000 + 10 * i) * SECTOR, data.length);
            Req back = g.read(1 - q, 1, 1000 + 10L * i, 5 * SECTOR, l, r);
            g.run(back);
            assertArrayEquals(data, back.in(), "written data reads back with " + l);
        }
        assertArrayEquals(model, m.disk(), "nothing but the writes changed the disk");

        // FLUSH
        Req fl = g.flush(0, 0);
        g.run(fl);
        assertEquals(VirtioBlkAbi.S_OK, fl.status());
        assertEquals(1, fl.used.len());

        // GET_ID: 20 bytes of serial, not NUL-terminated when it fills them; a longer buffer is left alone past 20
        Req id = g.getId(1, 0, 32);
        g.run(id);
        assertEquals(VirtioBlkAbi.S_OK, id.status());
        assertEquals(21, id.used.len(), "20 id bytes and the status byte");
        byte[] got = id.in();
        assertEquals("SERIAL-0123456789ABC", new String(got, 0, 20, StandardCharsets.US_ASCII));
        assertAll(Arrays.copyOfRange(got, 20, 32), BlkDriver.IN_FILL, "bytes past the 20-byte id");
        Req shortId = g.getId(0, 1, 8);
        g.run(shortId);
        assertEquals(VirtioBlkAbi.S_OK, shortId.status());
        assertEquals(9, shortId.used.len());
        assertEquals("SERIAL-0", new String(shortId.in(), StandardCharsets.US_ASCII));

        // DISCARD: the range reads as zeroes afterwards (the file driver punches a hole), nothing else changes
        Req d = g.discardOrZeroes(0, 0, VirtioBlkAbi.T_DISCARD, 2000, 24, 0);
        g.run(d);
        assertEquals(VirtioBlkAbi.S_OK, d.status());
        assertEquals(1, d.used.len());
        Arrays.fill(model, 2000 * SECTOR, 2024 * SECTOR, (byte) 0);
        assertArrayEquals(model, m.disk(), "discard");

        // WRITE_ZEROES without and with UNMAP
        Req z = g.discardOrZeroes(1, 0, VirtioBlkAbi.T_WRITE_ZEROES, 3001, 7, 0);
        g.run(z);
        assertEquals(VirtioBlkAbi.S_OK, z.status());
        Arrays.fill(model, 3001 * SECTOR, 3008 * SECTOR, (byte) 0);
        Req zu = g.discardOrZeroes(0, 0, VirtioBlkAbi.T_WRITE_ZEROES, 4000, 64, VirtioBlkAbi.WZ_FLAG_UNMAP);
        g.run(zu);
        assertEquals(VirtioBlkAbi.S_OK, zu.status());
        Arrays.fill(model, 4000 * SECTOR, 4064 * SECTOR, (byte) 0);
        assertArrayEquals(model, m.disk(), "write zeroes");
        // zero sectors: nothing to do, and OK (as QEMU answers), whatever the driver below thinks of it
        Req d0 = g.discardOrZeroes(0, 0, VirtioBlkAbi.T_DISCARD, 100, 0, 0);
        Req z0 = g.discardOrZeroes(1, 0, VirtioBlkAbi.T_WRITE_ZEROES, 100, 0, VirtioBlkAbi.WZ_FLAG_UNMAP);
        g.run(d0, z0);
        assertEquals(VirtioBlkAbi.S_OK, d0.status());
        assertEquals(VirtioBlkAbi.S_OK, z0.status());
        Req zr = g.read(1, 1, 3000, 9 * SECTOR, Layout.SCATTERED, r);
        g.run(zr);
        assertArrayEquals(slice(model, 3000 * SECTOR, 9 * SECTOR), zr.in(), "zeroes read back");

        // unsupported: an unknown type, DISCARD with flags, WRITE_ZEROES with an unknown flag
        Req unknown = g.build(0, 0, 99, 0, new byte[0], 8, Layout.SIMPLE, r);
        Req discardUnmap = g.discardOrZeroes(0, 1, VirtioBlkAbi.T_DISCARD, 10, 1, VirtioBlkAbi.WZ_FLAG_UNMAP);
        Req zeroesBadFlag = g.discardOrZeroes(0, 2, VirtioBlkAbi.T_WRITE_ZEROES, 10, 1, 2);
        g.run(unknown, discardUnmap, zeroesBadFlag);
        assertEquals(VirtioBlkAbi.S_UNSUPP, unknown.status());
        assertEquals(1, unknown.used.len());
        assertAll(unknown.in(), BlkDriver.IN_FILL, "an unsupported request writes no data");
        assertEquals(VirtioBlkAbi.S_UNSUPP, discardUnmap.status());
        assertEquals(VirtioBlkAbi.S_UNSUPP, zeroesBadFlag.status());
        assertArrayEquals(model, m.disk(), "unsupported requests change nothing");
        assertFalse(g.pci.needsReset());
    }

    @ParameterizedTest
    @EnumSource(Serving.class)
    void discardAndWriteZeroesAreUnsupportedWhenNotNegotiated(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving));
        g.initLinux(BlkDriver.LINUX_FEATURES & ~(VirtioBlkAbi.F_DISCARD | VirtioBlkAbi.F_WRITE_ZEROES));
        Req d = g.discardOrZeroes(0, 0, VirtioBlkAbi.T_DISCARD, 100, 8, 0);
        Req z = g.discardOrZeroes(0, 1, VirtioBlkAbi.T_WRITE_ZEROES, 200, 8, 0);
        g.run(d, z);
        assertEquals(VirtioBlkAbi.S_UNSUPP, d.status());
        assertEquals(VirtioBlkAbi.S_UNSUPP, z.status());
        assertArrayEquals(m.initialContent, m.disk());
    }

    // ------------------------------------------------------------------ errors that leave the disk alone

    @ParameterizedTest
    @EnumSource(Serving.class)
    void readOnlyDiskRefusesEveryWrite(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving).readOnly(true).queues(2));
        assertTrue((g.pci.deviceFeatures() & VirtioBlkAbi.F_RO) != 0, "RO offered for a read-only image");
        g.initLinux(BlkDriver.LINUX_FEATURES);
        assertTrue(g.has(VirtioBlkAbi.F_RO));
        Random r = new Random(2);
        Req w = g.write(0, 0, 10, pattern(4 * SECTOR, 1), Layout.SCATTERED, r);
        Req w2 = g.write(1, 0, 0, pattern(SECTOR, 2), Layout.INDIRECT, r);
        Req z = g.discardOrZeroes(0, 1, VirtioBlkAbi.T_WRITE_ZEROES, 50, 10, 0);
        Req zu = g.discardOrZeroes(1, 1, VirtioBlkAbi.T_WRITE_ZEROES, 60, 10, VirtioBlkAbi.WZ_FLAG_UNMAP);
        Req d = g.discardOrZeroes(0, 2, VirtioBlkAbi.T_DISCARD, 70, 10, 0);
        g.run(w, w2, z, zu, d);
        for (Req req : new Req[] {w, w2, z, zu, d}) {
            assertEquals(VirtioBlkAbi.S_IOERR, req.status(), req + " on a read-only disk");
            assertEquals(1, req.used.len());
        }
        Req rd = g.read(0, 3, 10, 4 * SECTOR, Layout.SIMPLE, r);
        Req fl = g.flush(1, 2);
        Req id = g.getId(1, 3, 20);
        g.run(rd, fl, id);
        assertEquals(VirtioBlkAbi.S_OK, rd.status());
        assertArrayEquals(slice(m.initialContent, 10 * SECTOR, 4 * SECTOR), rd.in());
        assertEquals(VirtioBlkAbi.S_OK, fl.status());
        assertEquals(VirtioBlkAbi.S_OK, id.status());
        assertArrayEquals(m.initialContent, m.disk(), "the read-only disk is unchanged");
        assertFalse(g.pci.needsReset());
    }

    @ParameterizedTest
    @EnumSource(Serving.class)
    void requestsPastTheEndOrMisalignedFailWithoutTouchingTheDisk(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving));
        g.initLinux(BlkDriver.LINUX_FEATURES);
        long cap = g.capacity;
        Random r = new Random(9);
        Req[] bad = {
            g.read(0, 0, cap, SECTOR, Layout.SIMPLE, r),                      // starts at the end
            g.read(0, 1, cap - 1, 2 * SECTOR, Layout.SCATTERED, r),           // straddles the end
            g.write(0, 2, cap - 2, pattern(4 * SECTOR, 1), Layout.SIMPLE, r), // straddles the end
            g.write(0, 3, cap, pattern(SECTOR, 2), Layout.SIMPLE, r),         // starts at the end
            g.read(0, 4, 0x8000_0000_0000_0000L, SECTOR, Layout.SIMPLE, r),   // sector with the sign bit
            g.write(0, 5, -1L, pattern(SECTOR, 3), Layout.SIMPLE, r),         // 2^64 - 1
            g.write(0, 6, 4, pattern(SECTOR + 1, 4), Layout.SIMPLE, r),       // not a sector multiple
            g.write(0, 7, 4, pattern(100, 5), Layout.SCATTERED, r),           // less than a sector
            g.read(0, 8, 4, 700, Layout.SIMPLE, r),                           // not a sector multiple
            g.discardOrZeroes(0, 9, VirtioBlkAbi.T_DISCARD, cap - 1, 2, 0),
            g.discardOrZeroes(0, 10, VirtioBlkAbi.T_WRITE_ZEROES, cap, 1, 0),
            g.discardOrZeroes(0, 11, VirtioBlkAbi.T_WRITE_ZEROES, 0, VirtioBlkAbi.MAX_DISCARD_SECTORS + 1L, 0),
            g.discardOrZeroes(0, 12, VirtioBlkAbi.T_DISCARD, -8L, 8, 0),
        };
        g.run(bad);
        for (Req req : bad) {
            assertEquals(VirtioBlkAbi.S_IOERR, req.status(), req.toString());
            assertEquals(1, req.used.len(), req + ": only the status byte is written");
            assertAll(req.in(), BlkDriver.IN_FILL, req + ": data buffers untouched");
        }
        assertArrayEquals(m.initialContent, m.disk(), "the disk is unchanged");
        assertFalse(g.pci.needsReset(), "bad requests are not bad chains");

        Req last = g.read(0, 0, cap - 1, SECTOR, Layout.SIMPLE, r);
        byte[] tail = pattern(SECTOR, 6);
        Req lastW = g.write(0, 1, cap - 1, tail, Layout.SIMPLE, r);
        g.run(last);
        g.run(lastW);
        assertEquals(VirtioBlkAbi.S_OK, last.status());
        assertArrayEquals(slice(m.initialContent, (cap - 1) * SECTOR, SECTOR), last.in(), "the last sector");
        assertEquals(VirtioBlkAbi.S_OK, lastW.status());
        assertArrayEquals(tail, m.diskRange((cap - 1) * SECTOR, SECTOR));
    }

    // ------------------------------------------------------------------ malformed chains

    enum BadChain { NO_STATUS_BYTE, SHORT_HEADER, HEADER_SPLIT_SHORT, WRITABLE_HEADER }

    @ParameterizedTest
    @EnumSource(Serving.class)
    void malformedChainsNeedResetAndLeaveProcessAndDiskUnharmed(Serving serving) {
        BlkDriver g = machine(new Spec().serving(serving).queues(2));
        for (BadChain bad : BadChain.values()) {
            g.initLinux(BlkDriver.LINUX_FEATURES);
            Random r = new Random(bad.ordinal());
            g.run(g.read(0, 0, 1, SECTOR, Layout.SIMPLE, r));
            long configIrqs = m.irq.count(2);
            GuestRing vq = g.vqs[0];
            long data = BlkDriver.slotAddr(0, 1);
            long hdr = BlkDriver.slotAddr(0, 2);
            byte[] header = new byte[16];
            Bytes.putLE(header, 0, VirtioBlkAbi.T_OUT, 4);
            Bytes.putLE(header, 8, 0, 8);
            m.mem.write(hdr, header);
            m.mem.write(data, pattern(SECTOR, 9));
            switch (bad) {
                case NO_STATUS_BYTE -> vq.add(new GuestRing.Buf(hdr, 16, false), new GuestRing.Buf(data, SECTOR, false));
                case SHORT_HEADER -> vq.add(new GuestRing.Buf(hdr, 8, false), new GuestRing.Buf(data, 1, true));
                case HEADER_SPLIT_SHORT -> vq.add(new GuestRing.Buf(hdr, 8, false),
                        new GuestRing.Buf(hdr + 8, 7, false), new GuestRing.Buf(data, 1, true));
                case WRITABLE_HEADER -> vq.add(new GuestRing.Buf(hdr, 16, true), new GuestRing.Buf(data, SECTOR, true),
                        new GuestRing.Buf(data + SECTOR, 1, true));
                default -> throw new AssertionError(bad);
            }
            int usedBefore = vq.usedIdx();
            vq.publish();
            g.kick(0);
            m.irq.await(2, BlkMachine.DEADLINE, "configuration-change interrupt for " + bad);
            assertTrue(g.pci.needsReset(), bad + ": DEVICE_NEEDS_RESET");
            assertEquals(configIrqs + 1, m.irq.count(2), "one config interrupt");
            assertEquals(usedBefore, vq.usedIdx(), bad + ": no used entry for a malformed chain");

            // the device stays stopped, on every queue
            Req after = g.read(1, 0, 1, SECTOR, Layout.SIMPLE, r);
            g.submit(after);
            m.settleAll();
            assertEquals(0, g.vqs[1].usedIdx(), bad + ": a broken device completes nothing");
            assertArrayEquals(m.initialContent, m.disk(), bad + ": disk unchanged");
            assertTrue(m.loop.failures().isEmpty(), () -> "event-loop failures: " + m.loop.failures());

            // a reset brings it back
            g.reset();
            assertFalse(g.pci.needsReset());
        }
        g.initLinux(BlkDriver.LINUX_FEATURES);
        Random r = new Random(99);
        byte[] data = pattern(2 * SECTOR, 77);
        Req w = g.write(0, 0, 30, data, Layout.SCATTERED, r);
        Req rd = g.read(1, 0, 30, 2 * SECTOR, Layout.INDIRECT, r);
        g.run(w);
        g.run(rd);
        assertEquals(VirtioBlkAbi.S_OK, w.status());
        assertArrayEquals(data, rd.in(), "the re-initialised device works");
    }

    // ------------------------------------------------------------------ reset with requests in flight

    /** What the resetting vCPU saw the moment its status write of 0 returned. */
    record AfterReset(int status, byte[] writtenRange, int used0, int used1, int status0, int status1,
            long usedRing0, long usedRing1) {
    }

    @ParameterizedTest
    @EnumSource(Serving.class)
    void resetWaitsForRequestsInFlightAndDiscardsTheirCompletions(Serving serving) throws Exception {
        BlkDriver g = machine(new Spec().serving(serving).queues(2).blkdebug(true));
        g.initLinux(BlkDriver.LINUX_FEATURES);
        Random r = new Random(4);
        // one completed request per queue first, so the rings have moved
        g.run(g.read(0, 0, 0, SECTOR, Layout.SIMPLE, r), g.read(1, 0, 0, SECTOR, Layout.SIMPLE, r));
        int used0 = g.vqs[0].usedIdx();
        int used1 = g.vqs[1].usedIdx();
        assertEquals(1, used0);
        assertEquals(1, used1);

        long wSector = 500;
        long rSector = 900;
        BlkDebugDriver.Suspension sw = m.debug.suspend("write", BlkDebugDriver.Op.WRITE, wSector * SECTOR,
                (wSector + 8) * SECTOR);
        BlkDebugDriver.Suspension sr = m.debug.suspend("read", BlkDebugDriver.Op.READ, rSector * SECTOR,
                (rSector + 8) * SECTOR);
        byte[] data = pattern(8 * SECTOR, 42);
        Req w = g.write(0, 1, wSector, data, Layout.SCATTERED, r);
        Req rd = g.read(1, 1, rSector, 8 * SECTOR, Layout.SIMPLE, r);
        g.submit(w, rd);
        m.watchdog().await("write held by blkdebug", sw.reached());
        m.watchdog().await("read held by blkdebug", sr.reached());
        long usedEntry0 = m.mem.readU64(g.vqs[0].used + VirtioRing.USED_RING + VirtioRing.USED_ELEM_SIZE);
        long usedEntry1 = m.mem.readU64(g.vqs[1].used + VirtioRing.USED_RING + VirtioRing.USED_ELEM_SIZE);

        // vCPU 1 writes 0: its write returns only when the reset is complete
        CompletableFuture<AfterReset> seen = new CompletableFuture<>();
        Thread vcpu1 = new Thread(() -> {
            try {
                g.pci.setStatus(0);
                seen.complete(new AfterReset(g.pci.status(), m.diskRange(wSector * SECTOR, data.length),
                        g.vqs[0].usedIdx(), g.vqs[1].usedIdx(), w.status(), rd.status(),
                        m.mem.readU64(g.vqs[0].used + VirtioRing.USED_RING + VirtioRing.USED_ELEM_SIZE), m.mem.readU64(g.vqs[1].used + VirtioRing.USED_RING + VirtioRing.USED_ELEM_SIZE)));
            } catch (Throwable t) {
                seen.completeExceptionally(t);
            }
        }, "vcpu1");
        vcpu1.start();
        BlkMachine.spin("the reset is pending", m.dev::isResetPending);
        m.settleMain();
        assertEquals(15, g.pci.status(), "status does not read 0 while requests are in flight");
        assertFalse(seen.isDone(), "the resetting vCPU is still inside its status write");
        assertArrayEquals(slice(m.initialContent, wSector * SECTOR, data.length),
                m.diskRange(wSector * SECTOR, data.length), "the held write has not reached the disk");

        sw.resume();
        sr.resume();
        AfterReset a = m.watchdog().await("the reset to complete", seen);
        vcpu1.join();
        assertEquals(0, a.status(), "status reads 0 once the reset returned");
        assertArrayEquals(data, a.writtenRange(), "the held write finished before the reset completed");
        assertEquals(used0, a.used0(), "the write's completion was not written into the reset ring");
        assertEquals(used1, a.used1(), "the read's completion was not written into the reset ring");
        assertEquals(usedEntry0, a.usedRing0(), "used ring entries untouched");
        assertEquals(usedEntry1, a.usedRing1(), "used ring entries untouched");
        assertEquals(BlkDriver.STATUS_UNSET, a.status0(), "no status byte written for the discarded write");
        assertEquals(BlkDriver.STATUS_UNSET, a.status1(), "no status byte written for the discarded read");
        assertEquals(0, m.blk.inFlight());
        assertEquals(0, m.dev.requestsInFlight());

        // re-initialise and use both queues; the write is on the disk
        g.initLinux(BlkDriver.LINUX_FEATURES);
        assertServedWhereExpected(2);
        Req back = g.read(1, 2, wSector, data.length, Layout.INDIRECT, r);
        byte[] more = pattern(SECTOR, 43);
        Req w2 = g.write(0, 2, 7, more, Layout.SIMPLE, r);
        g.run(back, w2);
        assertEquals(VirtioBlkAbi.S_OK, back.status());
        assertArrayEquals(data, back.in());
        assertEquals(VirtioBlkAbi.S_OK, w2.status());
        assertArrayEquals(more, m.diskRange(7 * SECTOR, SECTOR));
        assertEquals(1, g.vqs[0].usedIdx(), "the new ring starts at 0");
    }
}
