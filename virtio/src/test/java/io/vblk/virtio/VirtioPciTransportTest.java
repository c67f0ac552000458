package io.vblk.virtio;

import static io.vblk.virtio.VirtioPciRegs.*;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import io.vblk.aio.EventNotifier;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.testkit.Bytes;
import io.vblk.testkit.GuestRing.Buf;
import io.vblk.testkit.GuestRing.Used;
import io.vblk.testkit.GuestRing;
import io.vblk.testkit.PciDriver;
import io.vblk.testkit.Spin;

/**
 * The virtio-pci function driven only as hardware: configuration-space
 * accesses, memory accesses at the BAR addresses the test "firmware"
 * assigned, guest RAM, and the eventfds the guest would wait on.
 */
@Tag("concurrency")
class VirtioPciTransportTest {
    static final long RAM_SIZE = 4 << 20;
    static final int QUEUES = 2;
    static final int QSIZE = 64;
    static final long DEVICE_BIT = 1L << 5;
    static final long OFFERED = VirtioFeatures.RING_FEATURES | DEVICE_BIT;
    static final long ALL = OFFERED | VirtioFeatures.VERSION_1;
    static final int CONFIG_VECTOR = QUEUES;

    MainLoop loop;
    GuestMemory mem;
    EchoDevice dev;
    VirtioPciTransport t;
    PciDriver pci;
    GuestRing[] rings = new GuestRing[QUEUES];

    @BeforeEach
    void machine() {
        loop = new MainLoop();
        mem = GuestMemory.allocate(0, RAM_SIZE);
        dev = new EchoDevice("echo0", VirtioDevice.ID_BLOCK, OFFERED, QUEUES, QSIZE, loop.context(), mem);
        t = new VirtioPciTransport(dev);
        pci = new PciDriver(t);
    }

    @AfterEach
    void teardown() {
        List<String> failures = loop.failures();
        loop.close();
        t.close();
        mem.close();
        assertTrue(failures.isEmpty(), failures::toString);
    }

    <T> T inHome(String what, Callable<T> task) {
        return loop.watchdog(Duration.ofSeconds(30)).await(what, loop.submit(what, task));
    }

    void inHome(String what, Runnable task) {
        loop.watchdog(Duration.ofSeconds(30)).await(what, loop.run(what, task));
    }

    /** Waits until everything the main loop had scheduled before now has run (two BH batches). */
    void settle() {
        inHome("settle", () -> { });
        inHome("settle", () -> { });
    }

    /** The initialisation sequence of virtio 1.2 section 3.1.1, as a guest driver does it. */
    void bringUp(long features, boolean msix) {
        pci.probe();
        pci.reset();
        if (msix) {
            pci.enableMsix();
        }
        assertTrue(pci.negotiate(features), "FEATURES_OK");
        for (int q = 0; q < QUEUES; q++) {
            rings[q] = new GuestRing(mem, 0x10000 + 0x10000L * q, QSIZE, 0x100000 + 0x100000L * q, 0x100000);
            rings[q].setEventIdx((features & VirtioFeatures.EVENT_IDX) != 0);
            pci.setupQueue(q, rings[q], msix ? q : NO_VECTOR);
        }
        pci.common(COMMON_MSIX, 2, msix ? CONFIG_VECTOR : NO_VECTOR);
        int okBefore = dev.driverOks.get();
        pci.driverOk();
        Spin.until("onDriverOk", () -> dev.driverOks.get() == okBefore + 1);
    }

    /**
     * One echo request on queue {@code q}: add, publish, kick, wait for the used entry, check the echo.
     * The entry is consumed only once the device has decided on the interrupt: consuming re-arms
     * {@code used_event} past it, and a device that reads that after its flush rightly signals nothing
     * (virtio 1.2, 2.7.10) — a test expecting the interrupt would race its own driver.
     */
    Used echo(int q, byte[] payload) {
        GuestRing r = rings[q];
        Buf in = r.in(payload.length);
        int head = r.add(r.out(payload), in);
        int usedBefore = r.usedIdx();
        int decisionsBefore = dev.notifyDecisions.get();
        r.publish();
        pci.kick(q);
        Spin.until("used entry on vq" + q, () -> r.usedIdx() != usedBefore);
        Spin.until("the interrupt decision on vq" + q, () -> dev.notifyDecisions.get() != decisionsBefore);
        Used u = r.pollUsed();
        assertEquals(head, u.id());
        assertEquals(payload.length, u.len());
        assertArrayEquals(payload, mem.read(in.gpa(), payload.length));
        return u;
    }

    static void awaitSignal(String what, EventNotifier n) {
        Spin.until(what, n::testAndClear);
    }

    // ------------------------------------------------------------------ enumeration

    @Test
    void pciIdentityOfAModernVirtioBlockFunction() {
        assertEquals(0x1af4, pci.cfg16(VENDOR_ID));
        assertEquals(0x1042, pci.cfg16(DEVICE_ID));
        assertEquals(0x1042_1af4, pci.cfg32(VENDOR_ID));
        assertEquals(1, pci.cfg8(REVISION_ID));
        assertEquals(0x01, pci.cfg8(CLASS_PROG + 2), "mass storage");
        assertEquals(0x00, pci.cfg8(CLASS_PROG + 1), "SCSI subclass, as QEMU");
        assertEquals(0x00, pci.cfg8(CLASS_PROG));
        assertEquals(0, pci.cfg8(HEADER_TYPE));
        assertEquals(0x1af4, pci.cfg16(SUBSYSTEM_VENDOR_ID));
        assertEquals(VirtioDevice.ID_BLOCK, pci.cfg16(SUBSYSTEM_ID));
        assertEquals(1, pci.cfg8(INTERRUPT_PIN), "INTA#");
        assertTrue((pci.cfg16(STATUS) & STATUS_CAP_LIST) != 0);
        pci.cfgWrite16(VENDOR_ID, 0x1234);
        assertEquals(0x1af4, pci.cfg16(VENDOR_ID), "read-only");

        EchoDevice other = new EchoDevice("other", 31, 0, 1, 8, loop.context(), mem);
        try (VirtioPciTransport t2 = new VirtioPciTransport(other)) {
            assertEquals(0x1040 + 31, t2.configRead(DEVICE_ID, 2));
            assertEquals(0xff, t2.configRead(CLASS_PROG + 2, 1), "other");
            assertEquals(31, t2.configRead(SUBSYSTEM_ID, 2));
        }
    }

    @Test
    void barSizingAndAssignment() {
        assertEquals(0, pci.sizeBar(0), "BAR0 not implemented");
        assertEquals(4096, pci.sizeBar(VirtioPciTransport.MSIX_BAR));
        assertEquals(0, pci.sizeBar(2));
        assertEquals(0, pci.sizeBar(3));
        assertEquals(0x4000, pci.sizeBar(VirtioPciTransport.VIRTIO_BAR));

        pci.cfgWrite32(BAR0 + 16, -1);
        assertEquals(0xffff_c00c, pci.cfg32(BAR0 + 16), "64-bit prefetchable, 16 KiB");
        pci.cfgWrite32(BAR0 + 20, -1);
        assertEquals(0xffff_ffff, pci.cfg32(BAR0 + 20), "upper half of the 64-bit BAR");
        pci.cfgWrite32(BAR0 + 4, -1);
        assertEquals(0xffff_f000, pci.cfg32(BAR0 + 4), "32-bit non-prefetchable, 4 KiB");
        pci.cfgWrite32(ROM_ADDRESS, -1);
        assertEquals(0, pci.cfg32(ROM_ADDRESS), "no expansion ROM");
        pci.cfgWrite32(BAR0 + 16, 0x1234_5678);
        assertEquals(0x1234_400c, pci.cfg32(BAR0 + 16), "address bits below the size are hard-wired 0");

        pci.assignBars();
        assertEquals(PciDriver.MSIX_BAR_ADDR, pci.barAddress(VirtioPciTransport.MSIX_BAR));
        assertEquals(PciDriver.VIRTIO_BAR_ADDR, pci.barAddress(VirtioPciTransport.VIRTIO_BAR));
        assertEquals(PciDriver.VIRTIO_BAR_ADDR, t.barAddress(VirtioPciTransport.VIRTIO_BAR));
        assertEquals(0x4000, t.barSize(VirtioPciTransport.VIRTIO_BAR));
        assertTrue(t.memoryEnabled());
        assertEquals(COMMAND_MEMORY | COMMAND_MASTER, pci.cfg16(COMMAND));
        pci.cfgWrite16(COMMAND, 0xffff);
        assertEquals(COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE, pci.cfg16(COMMAND),
                "no I/O space to enable");
    }

    @Test
    void capabilityWalkFindsEveryVirtioStructureMsixAndThePciCfgWindow() {
        pci.probe();
        assertEquals(List.of(CAP_ID_VNDR, CAP_ID_VNDR, CAP_ID_VNDR, CAP_ID_VNDR, CAP_ID_VNDR, CAP_ID_MSIX),
                pci.capIds);
        int bar = VirtioPciTransport.VIRTIO_BAR;
        assertEquals(new PciDriver.Region(pci.common.capOffset(), bar, 0x0000, 0x1000), pci.common);
        assertEquals(new PciDriver.Region(pci.isr.capOffset(), bar, 0x1000, 0x1000), pci.isr);
        assertEquals(new PciDriver.Region(pci.device.capOffset(), bar, 0x2000, 0x1000), pci.device);
        assertEquals(new PciDriver.Region(pci.notify.capOffset(), bar, 0x3000, 0x1000), pci.notify);
        assertEquals(4, pci.notifyMultiplier);
        assertEquals(20, pci.cfg8(pci.notify.capOffset() + CAP_LEN));
        assertNotEquals(0, pci.pciCfgCap);
        assertEquals(CAP_PCI_CFG, pci.cfg8(pci.pciCfgCap + CAP_CFG_TYPE));
        assertEquals(QUEUES + 1, pci.msixVectors, "a vector per queue plus config");
        assertEquals(VirtioPciTransport.MSIX_BAR, pci.msixTableBar);
        assertEquals(0, pci.msixTableOffset);
        assertEquals(VirtioPciTransport.MSIX_BAR, pci.msixPbaBar);
        assertEquals(0x800, pci.msixPbaOffset);
        assertEquals(QUEUES, pci.common(COMMON_NUMQ, 2));
        pci.selectQueue(1);
        assertEquals(QSIZE, pci.common(COMMON_Q_SIZE, 2));
        assertEquals(1, pci.common(COMMON_Q_NOFF, 2));
        pci.selectQueue(QUEUES);
        assertEquals(0, pci.common(COMMON_Q_SIZE, 2), "no such queue");
    }

    // ------------------------------------------------------------------ features and status

    @Test
    void featureNegotiation() {
        pci.probe();
        pci.reset();
        assertEquals(ALL, pci.deviceFeatures());
        pci.common(COMMON_DFSELECT, 4, 2);
        assertEquals(0, pci.common(COMMON_DF, 4), "no feature bits beyond 63");
        long accept = VirtioFeatures.VERSION_1 | VirtioFeatures.EVENT_IDX;
        assertTrue(pci.negotiate(accept));
        assertEquals(accept, dev.negotiatedFeatures());
        assertTrue(dev.hasFeature(VirtioFeatures.EVENT_IDX));
        assertFalse(dev.hasFeature(DEVICE_BIT));
        pci.writeDriverFeatures(ALL);
        assertEquals(accept, dev.driverFeatures(), "features are frozen once FEATURES_OK is set");
        pci.common(COMMON_GFSELECT, 4, 1);
        assertEquals(1, pci.common(COMMON_GF, 4), "VERSION_1 reads back in the high word");
    }

    @Test
    void featuresOkIsRefusedForUnofferedFeaturesOrWithoutVersion1() {
        pci.probe();
        pci.reset();
        {
            assertFalse(pci.negotiate(VirtioFeatures.VERSION_1 | (1L << 40)), "bit 40 was not offered");
            assertEquals(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER, pci.status());
            assertEquals(0, dev.negotiatedFeatures());
            pci.reset();
            assertFalse(pci.negotiate(VirtioFeatures.EVENT_IDX), "a modern device needs VERSION_1");
            assertEquals(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER, pci.status());
            pci.addStatus(VirtioStatus.DRIVER_OK);
            assertEquals(0, pci.status() & VirtioStatus.DRIVER_OK, "no DRIVER_OK without FEATURES_OK");
            pci.reset();
            assertTrue(pci.negotiate(VirtioFeatures.VERSION_1));
        }
    }

    @Test
    void statusChangesReachTheDeviceInOrderInItsHomeContext() {
        pci.probe();
        pci.reset();
        dev.statusChanges.clear();
        dev.statusHookThreads.clear();
        bringUp(ALL, true);
        assertEquals(VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER | VirtioStatus.FEATURES_OK
                | VirtioStatus.DRIVER_OK, pci.status());
        settle();
        assertEquals(List.of("0->1", "1->3", "3->11", "11->15"), dev.statusChanges);
        for (Thread th : dev.statusHookThreads) {
            assertSame(loop.thread(), th, "hooks run in the device's home context, not the vCPU");
        }

        // DEVICE_NEEDS_RESET is the device's: the driver's writes do not clear it
        try (LogCapture log = new LogCapture()) {
            dev.virtioError("test: bad request header");
            assertEquals(1, log.count("bad request header"));
        }
        assertEquals(15 | VirtioStatus.DEVICE_NEEDS_RESET, pci.status());
        pci.setStatus(15);
        assertEquals(15 | VirtioStatus.DEVICE_NEEDS_RESET, pci.status());
        pci.reset();
        settle();
        assertEquals("79->0", dev.statusChanges.get(dev.statusChanges.size() - 1));
    }

    @Test
    void resetForgetsRingsFeaturesAndVectorsAndTheGuestCanStartAgain() {
        bringUp(ALL, true);
        echo(0, Bytes.pattern(32, 1));
        echo(1, Bytes.pattern(32, 2));
        int resetsBefore = dev.resets.get();
        pci.reset();
        assertEquals(resetsBefore + 1, dev.resets.get());
        assertEquals(0, dev.negotiatedFeatures());
        assertEquals(0, dev.driverFeatures());
        assertEquals(NO_VECTOR, pci.common(COMMON_MSIX, 2));
        assertEquals(0, pci.common(COMMON_Q_SELECT, 2));
        for (int q = 0; q < QUEUES; q++) {
            pci.selectQueue(q);
            assertEquals(QSIZE, pci.common(COMMON_Q_SIZE, 2), "size back to the maximum");
            assertEquals(0, pci.common(COMMON_Q_ENABLE, 2));
            assertEquals(0, pci.common(COMMON_Q_DESCLO, 4));
            assertEquals(0, pci.common(COMMON_Q_USEDLO, 4));
            assertEquals(NO_VECTOR, pci.common(COMMON_Q_MSIX, 2));
            assertEquals(0, dev.queue(q).lastAvailIdx());
        }
        bringUp(ALL, true);
        echo(0, Bytes.pattern(100, 3));
    }

    @Test
    void resetCompletesOnlyAfterInFlightRequestsFinished() throws Exception {
        bringUp(ALL, true);
        dev.hold = true;
        GuestRing r = rings[0];
        r.add(r.out(Bytes.pattern(8, 1)), r.in(8));
        r.add(r.out(Bytes.pattern(8, 2)), r.in(8));
        r.publish();
        pci.kick(0);
        Spin.until("two requests in flight", () -> dev.requests.get() == 2);

        // vCPU 1 writes 0: its write returns only when the reset is complete
        dev.quiesceStarted = new CountDownLatch(1);
        dev.inFlightAtResetHook = -1;
        AtomicInteger usedWhenResetReturned = new AtomicInteger(-1);
        AtomicInteger statusWhenResetReturned = new AtomicInteger(-1);
        Thread vcpu1 = new Thread(() -> {
            pci.setStatus(0);
            statusWhenResetReturned.set(dev.status());
            usedWhenResetReturned.set(r.usedIdx());
        }, "vcpu1");
        vcpu1.start();
        loop.watchdog(Duration.ofSeconds(30)).await("quiesceForReset", dev.quiesceStarted);
        assertEquals(2, dev.inFlightAtResetHook);
        assertEquals(15, pci.status(), "another vCPU reads the old status while requests are in flight");
        pci.setStatus(VirtioStatus.ACKNOWLEDGE);
        assertEquals(15, pci.status(), "writes during the reset are ignored");
        assertEquals(0, r.usedIdx());
        assertTrue(vcpu1.isAlive(), "the resetting vCPU is still inside its status write");

        loop.context().bhScheduleOneshot("complete", dev::completeHeld);
        vcpu1.join(Spin.DEADLINE.toMillis());
        assertFalse(vcpu1.isAlive());
        assertEquals(0, statusWhenResetReturned.get());
        assertEquals(2, usedWhenResetReturned.get(), "both completions reached the used ring before the reset ended");
        assertEquals(0, dev.queue(0).inUse());
        dev.hold = false;
        bringUp(ALL, true);
        echo(0, Bytes.pattern(8, 3));
    }

    // ------------------------------------------------------------------ kicks

    @Test
    void directModeRunsTheQueueHandlerInTheHomeContext() {
        bringUp(ALL, true);
        assertFalse(t.isHostNotifierEnabled(0));
        echo(0, Bytes.pattern(64, 7));
        assertSame(loop.context(), dev.lastHandlerContext);
        assertSame(loop.thread(), dev.lastHandlerThread);
        echo(1, Bytes.pattern(1000, 8));
    }

    @Test
    void kickSignalsTheHostNotifierWhenEnabled() {
        bringUp(ALL, true);
        inHome("ioeventfd on", () -> t.setHostNotifierEnabled(0, true));
        EventNotifier n = dev.queue(0).hostNotifier();
        assertNotNull(n);
        assertFalse(n.testAndClear(), "a new host notifier starts clear: the self-kick is the dataplane start's");
        settle();
        int handled = dev.handled.get();

        GuestRing r = rings[0];
        Buf in = r.in(4);
        r.add(r.out(new byte[] {9, 8, 7, 6}), in);
        r.publish();
        pci.kick(0);
        settle();
        assertEquals(handled, dev.handled.get(), "the kick went to the eventfd, not to a handler");
        assertEquals(0, r.usedIdx());

        pci.kick(0);
        inHome("ioeventfd off", () -> t.setHostNotifierEnabled(0, false));
        assertFalse(t.isHostNotifierEnabled(0));
        Spin.until("the pending kick is handed over to direct dispatch", () -> r.usedIdx() == 1);
        assertArrayEquals(new byte[] {9, 8, 7, 6}, mem.read(in.gpa(), 4));
    }

    @Test
    void ioeventfdAttachedToAnIOThreadRunsTheQueueThereAndIrqfdsDeliver() {
        bringUp(ALL, true);
        IOThread io = loop.newIOThread("io0");
        inHome("dataplane start", () -> {
            t.setGuestNotifiers(true);
            t.setHostNotifierEnabled(0, true);
            dev.attachHostNotifier(0, io.context());
        });
        assertTrue(t.isDoorbell(VirtioPciTransport.VIRTIO_BAR, pci.notifyAddr(0) - PciDriver.VIRTIO_BAR_ADDR));
        assertFalse(t.isDoorbell(VirtioPciTransport.VIRTIO_BAR, pci.notifyAddr(1) - PciDriver.VIRTIO_BAR_ADDR),
                "queue 1 has no ioeventfd");
        assertFalse(t.isDoorbell(VirtioPciTransport.VIRTIO_BAR, COMMON_STATUS));
        echo(0, Bytes.pattern(256, 5));
        assertSame(io.context(), dev.lastHandlerContext, "the handler ran in the iothread");
        awaitSignal("MSI-X vector 0 through the irqfd, from the iothread", t.guestNotifier(0));
        assertEquals(0, t.signalsWhileReleased());

        inHome("dataplane stop", () -> {
            dev.detachHostNotifier(0);
            t.setHostNotifierEnabled(0, false);
            t.setGuestNotifiers(false);
        });
        echo(0, Bytes.pattern(16, 6));
        assertSame(loop.context(), dev.lastHandlerContext, "back in the main loop");
    }

    // ------------------------------------------------------------------ interrupts

    @Test
    void msixVectorsSignalTheirGuestNotifiersAndHonourMasking() {
        bringUp(ALL, true);
        for (int v = 0; v <= QUEUES; v++) {
            t.guestNotifier(v).testAndClear();
        }
        echo(1, Bytes.pattern(8, 1));
        awaitSignal("vector 1", t.guestNotifier(1));
        assertFalse(t.guestNotifier(0).testAndClear());

        pci.programVector(1, true);
        echo(1, Bytes.pattern(8, 2));
        Spin.until("vector 1 pending in the PBA", () -> pci.pbaPending(1));
        assertFalse(t.guestNotifier(1).testAndClear(), "masked: pending, not delivered");
        pci.programVector(1, false);
        awaitSignal("unmasking delivers the pending vector", t.guestNotifier(1));
        assertFalse(pci.pbaPending(1));

        pci.setMsixControl(true, true);
        echo(0, Bytes.pattern(8, 3));
        Spin.until("vector 0 pending under the function mask", () -> pci.pbaPending(0));
        assertFalse(t.guestNotifier(0).testAndClear());
        pci.setMsixControl(true, false);
        awaitSignal("function unmask delivers", t.guestNotifier(0));

        int gen = (int) pci.common(COMMON_CFGGENERATION, 1);
        dev.notifyConfigChange();
        awaitSignal("config vector", t.guestNotifier(CONFIG_VECTOR));
        assertNotEquals(gen, (int) pci.common(COMMON_CFGGENERATION, 1));

        pci.selectQueue(0);
        pci.reset(); // vectors are programmed before DRIVER_OK; re-init to test an unmappable one
        pci.negotiate(ALL);
        pci.selectQueue(0);
        pci.common(COMMON_Q_MSIX, 2, 7);
        assertEquals(NO_VECTOR, pci.common(COMMON_Q_MSIX, 2), "a vector past the table cannot be mapped");
    }

    @Test
    void intxAndIsrWithoutMsix() {
        bringUp(ALL, false);
        EventNotifier intx = t.intxNotifier();
        intx.testAndClear();
        echo(0, Bytes.pattern(8, 1));
        awaitSignal("INTx", intx);
        assertTrue((pci.cfg16(STATUS) & STATUS_INTERRUPT) != 0, "interrupt status in the PCI status register");
        assertEquals(ISR_QUEUE, pci.readIsr());
        assertEquals(0, pci.readIsr(), "reading the ISR clears it");
        assertEquals(0, pci.cfg16(STATUS) & STATUS_INTERRUPT, "and deasserts INTx");

        dev.notifyConfigChange();
        awaitSignal("INTx for config", intx);
        assertEquals(ISR_CONFIG, pci.readIsr());

        pci.cfgWrite16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE);
        echo(0, Bytes.pattern(8, 2));
        Spin.until("ISR set", () -> t.isrStatus() != 0);
        settle();
        assertFalse(intx.testAndClear(), "INTx disabled in the command register");
        pci.cfgWrite16(COMMAND, COMMAND_MEMORY | COMMAND_MASTER);
        assertTrue(intx.testAndClear(), "re-enabling INTx with the ISR set asserts it");
        assertEquals(ISR_QUEUE, pci.readIsr());
    }

    @Test
    void interruptsRaisedOffTheHomeThreadWithoutGuestNotifiersArriveThroughTheMainLoop() {
        bringUp(ALL, true);
        t.guestNotifier(1).testAndClear();
        assertFalse(t.guestNotifiersAssigned());
        t.raiseQueueInterrupt(1); // from the test thread: not the home thread, no irqfd wiring
        awaitSignal("vector 1 via the main loop", t.guestNotifier(1));
    }

    /** An interrupt controller that records what reaches it. */
    static final class RecordingSink implements InterruptSink {
        final List<String> events = new java.util.concurrent.CopyOnWriteArrayList<>();

        @Override
        public void msi(int vector, long address, int data) {
            events.add(String.format("msi %d 0x%x 0x%x %s", vector, address, data, Thread.currentThread().getName()));
        }

        @Override
        public void intx(boolean asserted) {
            events.add("intx " + asserted);
        }

        @Override
        public void guestNotifierAssigned(int vector, EventNotifier irqfd, long address, int data) {
            events.add(String.format("assign %d 0x%x 0x%x", vector, address, data));
        }

        @Override
        public void guestNotifierReleased(int vector, EventNotifier irqfd) {
            events.add("release " + vector);
        }
    }

    @Test
    void theInterruptSinkGetsMessagesFromTheHomeContextAndIrqfdAssignments() {
        RecordingSink sink = new RecordingSink();
        t.setInterruptSink(sink);
        bringUp(ALL, true);
        echo(1, Bytes.pattern(8, 1));
        Spin.until("MSI for vector 1", () -> sink.events.contains("msi 1 0xfee00000 0x41 main-loop"));
        t.raiseConfigInterrupt(); // from the test thread: carried to the main loop
        Spin.until("MSI for the config vector", () -> sink.events.contains("msi 2 0xfee00000 0x42 main-loop"));

        sink.events.clear();
        inHome("assign", () -> t.setGuestNotifiers(true));
        assertEquals(List.of("assign 0 0xfee00000 0x40", "assign 1 0xfee00000 0x41", "assign 2 0xfee00000 0x42"),
                sink.events);
        t.guestNotifier(1).testAndClear();
        t.signalGuestNotifier(1);
        assertTrue(t.guestNotifier(1).testAndClear(), "the irqfd is signalled by the caller itself");
        sink.events.clear();
        inHome("release", () -> t.setGuestNotifiers(false));
        assertEquals(List.of("release 0", "release 1", "release 2"), sink.events);
        t.signalGuestNotifier(1);
        assertEquals(1, t.signalsWhileReleased(), "a late irqfd signal is counted (a real host loses it)");
    }

    @Test
    void theInterruptSinkSeesTheIntxLevel() {
        RecordingSink sink = new RecordingSink();
        t.setInterruptSink(sink);
        bringUp(ALL, false);
        echo(0, Bytes.pattern(8, 1));
        Spin.until("INTx asserted", () -> sink.events.contains("intx true"));
        assertEquals(ISR_QUEUE, pci.readIsr());
        assertEquals("intx false", sink.events.get(sink.events.size() - 1), "reading the ISR deasserts");
    }

    // ------------------------------------------------------------------ configuration access paths

    @Test
    void pciCfgWindowReachesTheVirtioBar() {
        pci.walkCaps(); // no BARs assigned: firmware that cannot reach a 64-bit BAR uses the window
        int bar = VirtioPciTransport.VIRTIO_BAR;
        assertEquals(QUEUES, pci.pciCfgRead(bar, COMMON_NUMQ, 2));
        assertEquals(EchoDevice.MAGIC, pci.pciCfgRead(bar, VirtioPciTransport.DEVICE_CFG_OFFSET, 4));
        assertEquals(EchoDevice.MAGIC & 0xff, pci.pciCfgRead(bar, VirtioPciTransport.DEVICE_CFG_OFFSET, 1));
        pci.pciCfgWrite(bar, COMMON_STATUS, 1, 0);
        Spin.until("reset", () -> pci.pciCfgRead(bar, COMMON_STATUS, 1) == 0);
        pci.pciCfgWrite(bar, COMMON_STATUS, 1, VirtioStatus.ACKNOWLEDGE);
        assertEquals(VirtioStatus.ACKNOWLEDGE, pci.pciCfgRead(bar, COMMON_STATUS, 1));
        assertEquals(VirtioStatus.ACKNOWLEDGE, dev.status());
        pci.pciCfgSetup(bar, COMMON_STATUS, 3);
        pci.cfgWrite32(pci.pciCfgCap + PCI_CFG_DATA, 0);
        assertEquals(VirtioStatus.ACKNOWLEDGE, dev.status(), "a write of length 3 is ignored");
        assertEquals(0, pci.cfg32(pci.pciCfgCap + PCI_CFG_DATA), "and so is a read: the data field keeps its bytes");

        // a whole polled request through the window, as SeaBIOS does it
        pci.pciCfgWrite(bar, COMMON_STATUS, 1, VirtioStatus.ACKNOWLEDGE | VirtioStatus.DRIVER);
        pci.pciCfgWrite(bar, COMMON_GFSELECT, 4, 1);
        pci.pciCfgWrite(bar, COMMON_GF, 4, 1);
        pci.pciCfgWrite(bar, COMMON_STATUS, 1, 11);
        assertEquals(11, pci.pciCfgRead(bar, COMMON_STATUS, 1));
        GuestRing r = new GuestRing(mem, 0x10000, 16, 0x100000, 0x10000);
        pci.pciCfgWrite(bar, COMMON_Q_SELECT, 2, 0);
        pci.pciCfgWrite(bar, COMMON_Q_SIZE, 2, 16);
        pci.pciCfgWrite(bar, COMMON_Q_DESCLO, 4, (int) r.desc);
        pci.pciCfgWrite(bar, COMMON_Q_AVAILLO, 4, (int) r.avail);
        pci.pciCfgWrite(bar, COMMON_Q_USEDLO, 4, (int) r.used);
        pci.pciCfgWrite(bar, COMMON_Q_ENABLE, 2, 1);
        pci.pciCfgWrite(bar, COMMON_STATUS, 1, 15);
        Buf in = r.in(3);
        r.add(r.out(new byte[] {0x55, (byte) 0xaa, 1}), in);
        r.publish();
        pci.pciCfgWrite(bar, VirtioPciTransport.NOTIFY_CFG_OFFSET, 2, 0);
        Spin.until("request done", () -> r.usedIdx() == 1);
        assertArrayEquals(new byte[] {0x55, (byte) 0xaa, 1}, mem.read(in.gpa(), 3));
        Spin.until("ISR set", () -> t.isrStatus() != 0);
        assertEquals(ISR_QUEUE, pci.pciCfgRead(bar, VirtioPciTransport.ISR_CFG_OFFSET, 1));
        assertEquals(0, t.isrStatus(), "an ISR read through the window clears it too");
    }

    @Test
    void deviceConfigurationAndItsGeneration() {
        pci.probe();
        assertEquals(EchoDevice.MAGIC & 0xffff_ffffL, pci.deviceConfig(0, 4));
        assertEquals((EchoDevice.MAGIC >>> 8) & 0xff, pci.deviceConfig(1, 1));
        assertEquals(0, pci.deviceConfig(100, 4), "past the end reads 0");
        int gen = (int) pci.common(COMMON_CFGGENERATION, 1);
        pci.mmioWrite(pci.regionAddr(pci.device, 4), 4, 0x1234_5678L);
        assertEquals(0x1234_5678L, pci.deviceConfig(4, 4));
        assertNotEquals(gen, (int) pci.common(COMMON_CFGGENERATION, 1), "a change bumps the generation");
        pci.mmioWrite(pci.regionAddr(pci.device, 0), 4, 0);
        assertEquals(EchoDevice.MAGIC & 0xffff_ffffL, pci.deviceConfig(0, 4), "read-only field");
    }

    @Test
    void systemResetUnassignsBarsAndDisablesMsix() {
        bringUp(ALL, true);
        assertTrue(t.msixEnabled());
        inHome("system reset", t::systemReset);
        assertEquals(0, dev.status());
        assertEquals(0, t.barAddress(VirtioPciTransport.VIRTIO_BAR));
        assertEquals(0, pci.cfg16(COMMAND));
        assertFalse(t.msixEnabled());
        bringUp(ALL, true);
        echo(0, Bytes.pattern(8, 1));
    }

    // ------------------------------------------------------------------ bad guest input end to end

    enum BadChain { DESCRIPTOR_OUTSIDE_RAM, LOOP, AVAIL_IDX_JUMP, READABLE_AFTER_WRITABLE }

    @ParameterizedTest
    @EnumSource(BadChain.class)
    void malformedChainMarksTheDeviceNeedsResetRaisesAConfigInterruptAndIsLoggedOnce(BadChain bad) {
        bringUp(ALL, true);
        echo(0, Bytes.pattern(16, 1));
        for (int v = 0; v <= QUEUES; v++) {
            t.guestNotifier(v).testAndClear();
        }
        GuestRing r = rings[0];
        switch (bad) {
            case DESCRIPTOR_OUTSIDE_RAM -> {
                int d = r.takeDesc();
                r.writeDesc(d, RAM_SIZE + 0x1000, 512, 0, 0);
                r.putAvail(d);
                r.publish();
            }
            case LOOP -> {
                Buf b = r.out(new byte[8]);
                int d0 = r.takeDesc();
                int d1 = r.takeDesc();
                r.writeDesc(d0, b.gpa(), 8, VirtioRing.DESC_F_NEXT, d1);
                r.writeDesc(d1, b.gpa(), 8, VirtioRing.DESC_F_NEXT, d0);
                r.putAvail(d0);
                r.publish();
            }
            case AVAIL_IDX_JUMP -> r.setAvailIdxRaw(r.usedIdx() + QSIZE + 5);
            case READABLE_AFTER_WRITABLE -> {
                r.add(r.in(8), r.out(new byte[8]));
                r.publish();
            }
            default -> throw new AssertionError(bad);
        }
        byte[] ramBefore = mem.read(0, (int) RAM_SIZE);
        try (LogCapture log = new LogCapture()) {
            pci.kick(0);
            Spin.until("DEVICE_NEEDS_RESET", () -> (pci.status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0);
            awaitSignal("configuration-change interrupt", t.guestNotifier(CONFIG_VECTOR));
            assertTrue((t.isrStatus() & ISR_CONFIG) != 0);
            assertTrue(dev.isBroken());

            // the device stays stopped; further kicks on any queue change nothing and log nothing
            echoWithoutCompletion(0);
            echoWithoutCompletion(1);
            settle();
            assertEquals(1, log.count("WARN", "echo0"), log::text);
            assertFalse(t.guestNotifier(CONFIG_VECTOR).testAndClear(), "one config interrupt");
        }
        byte[] ramAfter = mem.read(0, (int) RAM_SIZE);
        for (int i = 0; i < ramBefore.length; i++) {
            boolean driverWrote = i >= 0x100000 || (i >= rings[1].desc && i < rings[1].used)
                    || (i >= r.desc && i < r.used);
            if (ramBefore[i] != ramAfter[i] && !driverWrote) {
                throw new AssertionError(String.format("the device wrote guest RAM at 0x%x", i));
            }
        }
        // the process is fine and a reset brings the device back
        pci.reset();
        assertFalse(dev.isBroken());
        bringUp(ALL, true);
        echo(0, Bytes.pattern(16, 2));
        echo(1, Bytes.pattern(16, 3));
    }

    private void echoWithoutCompletion(int q) {
        GuestRing r = rings[q];
        int before = r.usedIdx();
        r.add(r.out(new byte[4]), r.in(4));
        r.publish();
        pci.kick(q);
        settle();
        assertEquals(before, r.usedIdx(), "a broken device completes nothing");
    }

    @Test
    void badQueueProgrammingMarksNeedsResetWithoutAnInterruptBeforeDriverOk() {
        pci.probe();
        pci.reset();
        assertTrue(pci.negotiate(ALL));
        pci.selectQueue(0);
        pci.common(COMMON_Q_DESCLO, 4, RAM_SIZE + 0x10000);
        try (LogCapture log = new LogCapture()) {
            pci.common(COMMON_Q_ENABLE, 2, 1);
            assertEquals(0, pci.common(COMMON_Q_ENABLE, 2));
            assertTrue((pci.status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0);
            assertEquals(1, log.count("ring outside RAM"));
        }
        assertEquals(0, t.isrStatus(), "no config interrupt before DRIVER_OK");
        pci.reset();
        assertTrue(pci.negotiate(ALL));
        pci.selectQueue(1);
        pci.common(COMMON_Q_ENABLE, 2, 0);
        assertTrue((pci.status() & VirtioStatus.DEVICE_NEEDS_RESET) != 0, "queue_enable may only be written 1");
    }
}
