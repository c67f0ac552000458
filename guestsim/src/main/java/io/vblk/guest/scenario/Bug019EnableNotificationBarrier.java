package io.vblk.guest.scenario;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.VisibilityModel;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlk;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Bug 019, the {@code smp_mb()} in QEMU's {@code virtio_queue_set_notification}
 * ("Expose avail event/used flags before caller checks the avail idx"; the
 * fix that added it is, from memory, "virtio: add missing mb() on enable
 * notification", a sibling of a281ebc11a6, and its id is not confirmed
 * here): without it the device re-enabled guest kicks and re-read avail.idx
 * with no barrier between, so it could miss a request the driver did not
 * kick for. Replayed under the store-buffer {@link VisibilityModel}.
 */
public final class Bug019EnableNotificationBarrier implements Scenario {
    @Override
    public String id() {
        return "019-enable-notification-mb";
    }

    @Override
    public String title() {
        return "kick-enable-missing-barrier";
    }

    /** Not confirmed here: the fix is known by its title (see the summary). */
    @Override
    public String upstreamCommit() {
        return "";
    }

    @Override
    public String summary() {
        return "virtio_queue_set_notification(vq, 1) stored avail_event with no smp_mb before the avail.idx "
                + "re-check: the device saw an empty ring, the driver saw the old avail_event and did not kick "
                + "(the fix that added the barrier: not confirmed here)";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: IOThread io1 (serves queue 1 of a two-queue disk; io0 has queue 0 and the backend) and vCPU "
                        + "1 (the guest driver, EVENT_IDX). Adaptive polling is off (poll-max-ns 0), so only a kick "
                        + "tells io1 of a request.",
                "The handshake: the device ends virtio_blk_handle_vq by re-enabling kicks (with EVENT_IDX: store "
                        + "avail_event = avail.idx) and re-reading avail.idx; the driver publishes avail.idx, runs "
                        + "smp_mb (Linux's virtqueue_kick_prepare) and reads avail_event to decide whether to kick. "
                        + "Each side stores, then loads the other's field: store->load order on both sides, or each "
                        + "reads the other's old value.",
                "Visibility model: the device's store to avail_event (or used.flags) stays in its thread's store "
                        + "buffer, invisible in guest RAM, until that thread passes smp_mb, a system call or the end of "
                        + "its aio_poll iteration; the guest side keeps its own barrier (Linux has it).",
                "Steps, with the same seams in both runs: the guest reads sector 0 on queue 1 and kicks; io1 pops it "
                        + "and, at the end of handle_vq (RequestObserver.kicksEnabled, the step seam), is held before "
                        + "its iteration ends; the guest then reads sector 8 and decides whether to kick; io1 is let go "
                        + "and the guest waits for both completions.",
                "Fix: the smp_mb after the avail_event store drains it before io1 re-reads avail.idx, so the guest reads "
                        + "avail_event = 1 and kicks for its second read: io1 pops it, both complete.",
                "Legacy (" + LegacyBehavior.NO_MB_ON_ENABLE_NOTIFICATION + "), switched on after boot and probe, removes "
                        + "exactly that barrier: io1 read avail.idx = 1 (empty) with avail_event = 1 still buffered, "
                        + "the guest reads the old avail_event = 0, vring_need_event says no kick, and the second "
                        + "read sits in the ring: the guest waits for it until the watchdog reports the hang. (The "
                        + "machine's teardown serves it: a dataplane stop processes every queue.)");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        VisibilityModel vm = new VisibilityModel();
        DiskSpec disk = DiskSpec.nullDevice(64L << 20).withQueues(2).withIothreads(List.of("io0", "io1"));
        try (Machine m = Machine.start(MachineConfig.of(2, 2, List.of(disk)).withLegacy(sw).withPollMaxNs(0), vm)) {
            m.boot();
            BlkQueue q1 = GuestRead.queueOne(m);
            VirtioBlk dev = m.disk(0).device();
            Thread io1 = m.iothread("io1").thread();
            AtomicBoolean popped = new AtomicBoolean();
            AtomicBoolean armed = new AtomicBoolean(true);
            CompletableFuture<String> held = new CompletableFuture<>();
            CountDownLatch release = new CountDownLatch(1);
            dev.setObserver(new RequestObserver() {
                @Override
                public void submitted(int queue, int type, long sector) {
                    if (queue == 1) {
                        popped.set(true);
                    }
                }

                @Override
                public void kicksEnabled(int queue) {
                    if (queue == 1 && popped.get() && armed.compareAndSet(true, false)) {
                        held.complete(vm.buffered(Thread.currentThread()));
                        awaitUninterruptibly(release); // the seam: io1 between handle_vq's end and its iteration's
                    }
                }
            });
            sw.set(LegacyBehavior.NO_MB_ON_ENABLE_NOTIFICATION, legacy);
            long t0 = System.nanoTime();
            CompletableFuture<Boolean> decided = new CompletableFuture<>();
            CompletableFuture<Integer> guest;
            String ioBuffer;
            try {
                m.await("the first read kicked", m.runOnVcpu(1, "read sector 0 and kick", p -> {
                    q1.bindTo(p);
                    q1.allocateSlots(2, 4096);
                    q1.submit(0, VirtioBlkAbi.T_IN, 0, 4096);
                    return q1.kick();
                }), Duration.ofSeconds(30));
                ioBuffer = m.await("io1 held at the end of handle_vq", held, Duration.ofSeconds(30));
                guest = m.runOnVcpu(1, "read sector 8, kick if asked, wait for both", p -> {
                    q1.submit(1, VirtioBlkAbi.T_IN, 8, 4096);
                    decided.complete(q1.kick());
                    InterruptLine irq = p.interrupts();
                    int done = 0;
                    int status = 0;
                    while (done < 2) {
                        int slot = q1.reap();
                        if (slot >= 0) {
                            done++;
                            status |= q1.status(slot);
                        } else if (q1.enableInterrupts()) {
                            irq.await(-1);
                        }
                    }
                    return status;
                });
                m.await("the guest's kick decision", decided, Duration.ofSeconds(30));
            } finally {
                release.countDown();
            }
            boolean kicked = decided.join();
            try {
                int status = m.await("both reads", guest, hangBound);
                if (!kicked) {
                    throw new IllegalStateException(id() + ": the second read completed without a kick; not staged");
                }
                return new ScenarioResult(id(), title(), legacy, false, System.nanoTime() - t0, hangBound,
                        "io1's barrier published avail_event first (io1's store buffer at the seam: " + ioBuffer
                                + "); the guest kicked for its second read; status " + status, null);
            } catch (HangDetectedException e) {
                return new ScenarioResult(id(), title(), legacy, true, System.nanoTime() - t0, hangBound,
                        "the guest " + (kicked ? "kicked" : "did not kick") + " for its second read: io1 re-read "
                                + "avail.idx with " + ioBuffer + " still in its store buffer", e.dump());
            }
        }
    }

    private static void awaitUninterruptibly(CountDownLatch l) {
        boolean interrupted = false;
        for (;;) {
            try {
                l.await();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }
}
