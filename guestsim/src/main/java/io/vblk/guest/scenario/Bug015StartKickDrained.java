package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;
import io.vblk.dataplane.VirtioBlkDataplane;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DefaultDisk;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.GuestAllocator;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.guest.VirtioBlkGuest;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 015, QEMU d3f6f294ae "virtio-blk: always set ioeventfd during startup":
 * a dataplane started inside a drained section skipped its self-kick, and a
 * request the guest queued before DRIVER_OK stayed in the ring. Replayed in
 * the world of January 2024, i.e. without the later 5bdbaebcce ("virtio:
 * Re-enable notifications after drain"), whose kick on every attach masks it
 * ({@link LegacyBehavior#ATTACH_WITHOUT_QUEUE_KICK} on in both runs).
 */
public final class Bug015StartKickDrained implements Scenario {
    private static final long SIZE = 8L << 20;

    @Override
    public String id() {
        return "015-start-kick-drained";
    }

    @Override
    public String title() {
        return "start-kick-while-drained";
    }

    @Override
    public String upstreamCommit() {
        return "d3f6f294ae";
    }

    @Override
    public String summary() {
        return "dataplane start inside a drained section skipped the self-kick of its host notifiers: a request "
                + "queued before DRIVER_OK stayed in the vring after drained_end attached them (January 2024, "
                + "before 5bdbaebcce kicked on every attach)";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Bug 015 (d3f6f294ae, \"virtio-blk: always set ioeventfd during startup\", January 2024). Threads: "
                        + "vCPU 0 (a Linux-like driver), the main loop (emulates the vCPU's MMIO, runs block_resize "
                        + "and the dataplane start), io0 (the IOThread that serves the disk's queue).",
                "Steps: the driver sets the queue up, submits a read of sector 0 and kicks before DRIVER_OK; the "
                        + "device may not use the ring yet, so the main loop's handling of the kick consumes it "
                        + "(QEMU: the vCPU handles the kick in virtio_blk_handle_output and starts the dataplane from "
                        + "there). The disk's node was moved to io0 while the dataplane was stopped (BlockLayer."
                        + "setAioContext, which vblk allows for the backend of a stopped dataplane). block_resize takes io0's lock and drains the node; while its drained_begin waits for io0 (held at its next poll by "
                        + "the step seam, armed in both runs) the main loop keeps running, as QEMU's main loop does "
                        + "while the coroutine of block_resize waits, and the driver's DRIVER_OK write is emulated "
                        + "there: the dataplane starts inside the drained section, so it must not attach the host "
                        + "notifier. io0 is let go once the write returned; block_resize ends its drained section, "
                        + "and drained_end attaches the notifier in io0. Adaptive polling is off (poll-max-ns 0): "
                        + "only a signalled notifier makes io0 look at the ring.",
                "The fix signals every queue's host notifier during start whether or not the backend is drained "
                        + "(the attach alone stays conditional), so the notifier drained_end attaches is already "
                        + "signalled: io0 reads the ring and the read completes. vblk's transport creates a host "
                        + "notifier clear and leaves that kick to the start. (QEMU's virtio_bus_set_host_notifier "
                        + "initialises the eventfd signalled as well; the fix does not count on it: \"if a request "
                        + "snuck in then we guarantee that it will be detected\".)",
                "Legacy switch START_KICK_ONLY_WHEN_NOT_DRAINED restores the pre-fix start: the self-kick is skipped "
                        + "with the attach when drained. drained_end attaches a notifier nobody signalled; the read "
                        + "sits in the vring, io0 sleeps, the guest waits for its interrupt: a lost wake-up the "
                        + "watchdog reports with the event-loop dump.",
                "Era switch ATTACH_WITHOUT_QUEUE_KICK is on in both runs: since 5bdbaebcce (\"virtio: Re-enable "
                        + "notifications after drain\", February 2024) every attach kicks its queue, which is what "
                        + "vblk does by default and serves the read without the start's kick, so the fix's difference "
                        + "shows only in the world the fix was written for. Bug015Test also runs the legacy start "
                        + "with the era switch off: it completes.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        return run(legacy, hangBound, true);
    }

    /**
     * One run; {@code beforeAttachKick} puts vblk in January 2024
     * ({@link LegacyBehavior#ATTACH_WITHOUT_QUEUE_KICK}), as the scenario
     * always does; off, the later fix serves the read whatever the start did.
     */
    public ScenarioResult run(boolean legacy, Duration hangBound, boolean beforeAttachKick) throws Exception {
        Path dir = Files.createTempDirectory("vblk-bug015-");
        try {
            Path image = DefaultDisk.create(dir.resolve("disk.raw"), SIZE);
            LegacySwitches sw = new LegacySwitches();
            DiskSpec disk = DiskSpec.image(image, "raw").withIothreads(List.of("io0"));
            MachineConfig cfg = MachineConfig.of(1, 1, List.of(disk)).withLegacy(sw).withPollMaxNs(0);
            try (Machine m = Machine.start(cfg)) {
                m.boot(); // the firmware assigns the BARs (and runs the device once, as vblk does today)
                sw.set(LegacyBehavior.ATTACH_WITHOUT_QUEUE_KICK, beforeAttachKick);
                sw.set(LegacyBehavior.START_KICK_ONLY_WHEN_NOT_DRAINED, legacy);
                return stage(m, legacy, hangBound);
            }
        } finally {
            Seed000StreamCommit.deleteTree(dir);
        }
    }

    private ScenarioResult stage(Machine m, boolean legacy, Duration hangBound) throws Exception {
        Duration step = Duration.ofSeconds(30);
        VirtioBlk dev = m.disk(0).device();
        VirtioBlkDataplane dp = m.disk(0).dataplane();
        BlockBackend blk = m.disk(0).backend();
        BlockNode node = blk.root();
        AioContext io0 = m.iothread("io0").context();
        GuestAllocator mem = new GuestAllocator(Machine.DRIVER_RAM_START, m.config().ramBytes());
        VirtioBlkGuest.Options o = new VirtioBlkGuest.Options(1, 256, true, 1);
        int bdf = m.disk(0).bdf();

        // The driver: queues set up, a read submitted and kicked, no DRIVER_OK yet.
        VirtioBlkGuest driver = m.await("probe up to DRIVER_OK, a read kicked", m.runOnVcpu(0, "probe, read, kick",
                p -> {
                    VirtioBlkGuest g = VirtioBlkGuest.probe(p, bdf, mem, o, false);
                    BlkQueue q0 = g.queue(0);
                    q0.bindTo(p);
                    q0.allocateSlots(1, 4096);
                    q0.submit(0, VirtioBlkAbi.T_IN, 0, 4096);
                    if (!q0.kick()) {
                        throw new IllegalStateException("the driver did not kick");
                    }
                    return g;
                }), step);
        BlkQueue q = driver.queue(0);
        // The kick reached the device in direct mode; with no DRIVER_OK its handler pops nothing (consumed).
        if (dp.isStarted() || !dev.queue(0).hasWork()) {
            throw new IllegalStateException(id() + ": the read is not waiting in the ring before DRIVER_OK; not staged");
        }

        // The disk's node moves to io0 with the dataplane stopped (the backend is not pinned then).
        m.await("node to io0", m.mainLoop().run("x-blockdev-set-iothread", () -> m.blockLayer().setAioContext(node,
                io0)), step);

        // io0 held at its next poll: a drained_begin in it waits until the scenario lets it go.
        LoopHold io0Held = LoopHold.atNextPoll(io0);
        io0.aioNotify();
        io0Held.awaitHeld(m.watchdog(step), "io0 held at its next poll");
        CompletableFuture<Void> drained = new CompletableFuture<>();
        dev.setObserver(new RequestObserver() {
            @Override
            public void drainedBegin() {
                drained.complete(null);
            }
        });
        CompletableFuture<Void> resize;
        CompletableFuture<Void> driverOk = new CompletableFuture<>();
        CompletableFuture<Integer> guest;
        long t0;
        String staging;
        try {
            resize = m.mainLoop().run("block_resize", () -> {
                AioContext nc = node.context();
                try (AioContextLock.Held h = nc.inHomeThread() ? null : nc.acquire()) {
                    node.truncate(2 * SIZE);
                }
            });
            m.await("block_resize draining the node", drained, step);
            t0 = System.nanoTime();
            guest = m.runOnVcpu(0, "DRIVER_OK, then wait for the read's interrupt", p -> {
                driver.setDriverOk();
                driverOk.complete(null);
                return GuestRead.awaitStatus(q, p.interrupts(), null);
            });
            m.await("DRIVER_OK emulated inside the drained section", driverOk, step);
            staging = dp.describe();
            if (!dp.isStarted() || !blk.isQuiesced()) {
                throw new IllegalStateException(id() + ": the dataplane did not start inside the drained section ("
                        + staging + "); not staged");
            }
        } finally {
            io0Held.release();
            dev.setObserver(RequestObserver.NONE);
        }
        m.await("block_resize", resize, step);
        try {
            int status = m.await("the guest's read of sector 0", guest, hangBound);
            return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound,
                    "started inside block_resize's drained section; drained_end attached vq0 and io0 served the "
                            + "read (status " + status + ")", null);
        } catch (HangDetectedException e) {
            long ns = System.nanoTime() - t0;
            String detail = "lost wake-up: the read sits in vq0's vring (ring has work: " + dev.queue(0).hasWork()
                    + ", last_avail_idx " + dev.queue(0).lastAvailIdx() + ") and io0 never saw it: the start inside "
                    + "the drained section skipped the self-kick, drained_end attached a notifier nobody signalled";
            // The verdict is taken. The wake-up the start owed, given now, so the read finishes before the
            // machine closes (else the close's stop would serve it in main-loop mode with the medium going away).
            dev.queue(0).hostNotifier().set();
            try {
                m.await("the read, once vq0's notifier is signalled", guest, step);
                detail += "; signalled afterwards, io0 served it";
            } catch (HangDetectedException late) {
                detail += "; not served even once vq0's notifier was signalled";
            }
            return new ScenarioResult(id(), title(), legacy, true, ns, hangBound, detail, e.dump());
        }
    }
}
