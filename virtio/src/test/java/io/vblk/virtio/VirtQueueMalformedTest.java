package io.vblk.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BiConsumer;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import io.vblk.aio.MainLoop;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing;
import io.vblk.testkit.Spin;

/**
 * Every kind of malformed chain a driver can make: the queue refuses it
 * without throwing and without touching guest memory, reports it once to its
 * listener, logs it once, stops, and works again after a reset; in a device,
 * the device also reads DEVICE_NEEDS_RESET and raises one configuration
 * interrupt.
 */
class VirtQueueMalformedTest {
    static final long RAM_SIZE = VirtQueueTest.RAM_SIZE;
    static final int SIZE = 8;

    /** A malformed thing the driver writes, and what the error says. */
    enum Bad {
        HEAD_PAST_TABLE("past the table", (d, m) -> d.putAvail(SIZE + 3)),
        NEXT_PAST_TABLE("links to 8", (d, m) -> {
            d.writeDesc(0, d.out(new byte[4]).gpa(), 4, VirtioRing.DESC_F_NEXT, SIZE);
            d.putAvail(0);
        }),
        LOOP("longer than the queue size", (d, m) -> {
            Buf b = d.out(new byte[4]);
            d.writeDesc(0, b.gpa(), 4, VirtioRing.DESC_F_NEXT, 1);
            d.writeDesc(1, b.gpa(), 4, VirtioRing.DESC_F_NEXT, 0);
            d.putAvail(0);
        }),
        SELF_LOOP("longer than the queue size", (d, m) -> {
            d.writeDesc(3, d.out(new byte[4]).gpa(), 4, VirtioRing.DESC_F_NEXT, 3);
            d.putAvail(3);
        }),
        INDIRECT_LOOP("longer than its indirect table", (d, m) -> {
            Buf b = d.out(new byte[4]);
            long t = d.alloc(32, 16);
            d.writeDesc(t, 0, b.gpa(), 4, VirtioRing.DESC_F_NEXT, 1);
            d.writeDesc(t, 1, b.gpa(), 4, VirtioRing.DESC_F_NEXT, 0);
            d.writeDesc(0, t, 32, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_NEXT_PAST_TABLE("past the indirect table", (d, m) -> {
            Buf b = d.out(new byte[4]);
            long t = d.alloc(32, 16);
            d.writeDesc(t, 0, b.gpa(), 4, VirtioRing.DESC_F_NEXT, 2);
            d.writeDesc(0, t, 32, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_LENGTH_NOT_MULTIPLE_OF_16("not a non-zero multiple of 16", (d, m) -> {
            long t = d.alloc(32, 16);
            d.writeDesc(t, 0, d.out(new byte[4]).gpa(), 4, 0, 0);
            d.writeDesc(0, t, 24, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_LENGTH_ZERO("not a non-zero multiple of 16", (d, m) -> {
            d.writeDesc(0, d.alloc(16, 16), 0, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        NESTED_INDIRECT("nested indirect", (d, m) -> {
            long inner = d.alloc(16, 16);
            d.writeDesc(inner, 0, d.out(new byte[4]).gpa(), 4, 0, 0);
            long outer = d.alloc(16, 16);
            d.writeDesc(outer, 0, inner, 16, VirtioRing.DESC_F_INDIRECT, 0);
            d.writeDesc(0, outer, 16, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_WITH_NEXT("both INDIRECT and NEXT", (d, m) -> {
            long t = d.alloc(16, 16);
            d.writeDesc(t, 0, d.out(new byte[4]).gpa(), 4, 0, 0);
            d.writeDesc(0, t, 16, VirtioRing.DESC_F_INDIRECT | VirtioRing.DESC_F_NEXT, 1);
            d.writeDesc(1, d.out(new byte[4]).gpa(), 4, 0, 0);
            d.putAvail(0);
        }),
        INDIRECT_TABLE_OUTSIDE_RAM("indirect table [0x40000000", (d, m) -> {
            d.writeDesc(0, 0x4000_0000L, 64, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_NOT_NEGOTIATED("VIRTIO_F_INDIRECT_DESC", (d, m) -> {
            long t = d.alloc(16, 16);
            d.writeDesc(t, 0, d.out(new byte[4]).gpa(), 4, 0, 0);
            d.writeDesc(0, t, 16, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        INDIRECT_CHAIN_LONGER_THAN_QUEUE("more buffers than the queue size", (d, m) -> {
            int n = SIZE + 2;
            long t = d.alloc(16 * n, 16);
            Buf b = d.out(new byte[4]);
            for (int i = 0; i < n; i++) {
                d.writeDesc(t, i, b.gpa(), 4, i + 1 < n ? VirtioRing.DESC_F_NEXT : 0, i + 1);
            }
            d.writeDesc(0, t, 16L * n, VirtioRing.DESC_F_INDIRECT, 0);
            d.putAvail(0);
        }),
        BUFFER_OUTSIDE_RAM("[0x40000000, +0x10) of descriptor 0 is not in RAM", (d, m) -> {
            d.writeDesc(0, 0x4000_0000L, 16, 0, 0);
            d.putAvail(0);
        }),
        BUFFER_CROSSES_END_OF_RAM("is not in RAM", (d, m) -> {
            d.writeDesc(0, RAM_SIZE - 8, 16, 0, 0);
            d.putAvail(0);
        }),
        BUFFER_WRAPS_AROUND_2_TO_THE_64("[0xfffffffffffffff0, +0x20)", (d, m) -> {
            d.writeDesc(0, -16L, 32, 0, 0);
            d.putAvail(0);
        }),
        ZERO_LENGTH_BUFFER("has length 0", (d, m) -> {
            d.writeDesc(0, d.out(new byte[4]).gpa(), 0, 0, 0);
            d.putAvail(0);
        }),
        READABLE_AFTER_WRITABLE("follows a device-writable one", (d, m) -> {
            d.add(d.in(4), d.out(new byte[4]));
        }),
        AVAIL_IDX_JUMPS("jumped from 0 to 9", (d, m) -> d.setAvailIdxRaw(SIZE + 1));

        final String reason;
        final BiConsumer<GuestRing, GuestMemory> write;

        Bad(String reason, BiConsumer<GuestRing, GuestMemory> write) {
            this.reason = reason;
            this.write = write;
        }
    }

    GuestMemory mem;
    final List<String> errors = new ArrayList<>();

    @BeforeEach
    void ram() {
        mem = GuestMemory.allocate(0, RAM_SIZE);
    }

    @AfterEach
    void free() {
        mem.close();
    }

    @ParameterizedTest
    @EnumSource(Bad.class)
    void malformedInputBreaksTheQueueOnceAndHarmlessly(Bad bad) {
        long features = bad == Bad.INDIRECT_NOT_NEGOTIATED ? 0 : VirtioFeatures.INDIRECT_DESC;
        VirtQueue vq = new VirtQueue("bad-dev", 0, SIZE, mem, (q, r) -> errors.add(r));
        GuestRing drv = new GuestRing(mem, VirtQueueTest.RING, SIZE, VirtQueueTest.ARENA, VirtQueueTest.ARENA_SIZE);
        vq.setFeatures(features);
        drv.configure(vq);
        assertTrue(vq.enable());

        bad.write.accept(drv, mem);
        if (bad != Bad.AVAIL_IDX_JUMPS) {
            drv.publish();
        }
        byte[] ramBefore = mem.read(0, (int) RAM_SIZE);
        VirtQueueElement e = new VirtQueueElement();
        try (LogCapture log = new LogCapture()) {
            assertTrue(vq.hasWork());
            assertFalse(vq.pop(e), "a malformed chain is not popped");
            assertEquals(-1, e.head());
            assertEquals(1, errors.size(), errors::toString);
            assertTrue(errors.get(0).contains(bad.reason), () -> "reason '" + errors.get(0) + "' lacks '"
                    + bad.reason + "'");
            assertTrue(vq.isBroken());
            assertEquals(errors.get(0), vq.brokenReason());

            // it stays stopped, quietly
            drv.add(drv.out(new byte[4]), drv.in(4));
            drv.publish();
            for (int i = 0; i < 3; i++) {
                assertFalse(vq.pop(e));
            }
            assertFalse(vq.hasWork());
            assertTrue(vq.isEmpty());
            assertFalse(vq.shouldNotify());
            vq.setNotification(true);
            vq.flush();
            assertEquals(1, errors.size(), "reported once");
            assertEquals(1, log.count("WARN", "virtqueue 0", bad.reason), log::text);
            assertEquals(1, log.count("virtqueue 0"), "logged once: " + log.text());
        }
        byte[] ramAfter = mem.read(0, (int) RAM_SIZE);
        // the only bytes that changed are the ones the test driver wrote after the snapshot
        for (int i = 0; i < ramBefore.length; i++) {
            if (ramBefore[i] != ramAfter[i] && !(i >= VirtQueueTest.ARENA || (i >= drv.desc && i < drv.used))) {
                throw new AssertionError(String.format("the device wrote guest RAM at 0x%x", i));
            }
        }
        assertArrayEquals(java.util.Arrays.copyOfRange(ramBefore, (int) drv.used, (int) drv.ringEnd()),
                java.util.Arrays.copyOfRange(ramAfter, (int) drv.used, (int) drv.ringEnd()),
                "nothing was written to the used ring");

        // a reset brings the queue back
        vq.reset();
        GuestRing fresh = new GuestRing(mem, VirtQueueTest.RING, SIZE, VirtQueueTest.ARENA + 0x80000, 0x10000);
        vq.setFeatures(features);
        fresh.configure(vq);
        assertTrue(vq.enable());
        int head = fresh.add(fresh.out(new byte[] {1, 2, 3}), fresh.in(3));
        fresh.publish();
        assertTrue(vq.pop(e));
        vq.push(e, 3);
        vq.flush();
        assertEquals(head, fresh.pollUsed().id());
        assertEquals(1, errors.size());
    }

    @ParameterizedTest
    @EnumSource(Bad.class)
    void inADeviceMalformedInputMeansNeedsResetAndOneConfigInterrupt(Bad bad) {
        long ring = VirtioFeatures.EVENT_IDX | (bad == Bad.INDIRECT_NOT_NEGOTIATED ? 0 : VirtioFeatures.INDIRECT_DESC);
        try (MainLoop loop = new MainLoop()) {
            EchoDevice dev = new EchoDevice("bad-dev", VirtioDevice.ID_BLOCK, VirtioFeatures.RING_FEATURES, 1, SIZE,
                    loop.context(), mem);
            RecordingBus bus = new RecordingBus();
            dev.plug(bus);
            GuestRing drv = new GuestRing(mem, VirtQueueTest.RING, SIZE, VirtQueueTest.ARENA,
                    VirtQueueTest.ARENA_SIZE);
            Runnable init = () -> {
                dev.writeStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
                dev.setDriverFeatures(VirtioFeatures.VERSION_1 | ring);
                dev.writeStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
                drv.configure(dev.queue(0));
                dev.queue(0).enable();
                dev.writeStatus(15);
            };
            inHome(loop, "driver init", init);
            assertEquals(15, dev.status());

            bad.write.accept(drv, mem);
            if (bad != Bad.AVAIL_IDX_JUMPS) {
                drv.publish();
            }
            byte[] ramBefore = mem.read(0, (int) RAM_SIZE);
            try (LogCapture log = new LogCapture()) {
                dev.kick(0); // a kick without an ioeventfd: the handler runs as a BH in the main loop
                Spin.until("DEVICE_NEEDS_RESET", () -> (dev.status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0);
                Spin.until("config interrupt", () -> bus.configInterrupts.get() == 1);
                assertTrue(dev.isBroken());
                for (int i = 0; i < 3; i++) {
                    dev.kick(0);
                    inHome(loop, "settle", () -> { });
                }
                inHome(loop, "settle", () -> { });
                assertEquals(1, bus.configInterrupts.get(), "one configuration interrupt");
                assertEquals(0, bus.queueInterrupts.get());
                assertEquals(1, log.count("WARN", "bad-dev"), log::text);
                assertTrue(log.text().contains(bad.reason), log::text);
            }
            assertArrayEquals(ramBefore, mem.read(0, (int) RAM_SIZE), "the device wrote nothing to guest RAM");
            assertTrue(loop.failures().isEmpty(), loop.failures()::toString);

            inHome(loop, "system reset", dev::resetNow);
            assertEquals(0, dev.status());
            assertFalse(dev.isBroken());
            GuestRing fresh = new GuestRing(mem, VirtQueueTest.RING, SIZE, VirtQueueTest.ARENA + 0x80000, 0x10000);
            inHome(loop, "driver re-init", () -> {
                dev.writeStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
                dev.setDriverFeatures(VirtioFeatures.VERSION_1 | ring);
                dev.writeStatus(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK);
                fresh.configure(dev.queue(0));
                dev.queue(0).enable();
                dev.writeStatus(15);
            });
            Buf in = fresh.in(3);
            fresh.add(fresh.out(new byte[] {7, 8, 9}), in);
            fresh.publish();
            dev.kick(0);
            Spin.until("request after reset", () -> fresh.usedIdx() == 1);
            assertArrayEquals(new byte[] {7, 8, 9}, mem.read(in.gpa(), 3));
        }
    }

    private static void inHome(MainLoop loop, String what, Runnable r) {
        loop.watchdog(Duration.ofSeconds(30)).await(what, loop.run(what, r));
    }
}
