package io.vblk.guest.scenario;

import io.vblk.aio.LegacySwitches;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * What the dataplane scenarios share: their machine (two vCPUs, one
 * two-queue null disk with queue 0 in io0 and queue 1 in io1, error
 * injection to hold a request), and the guest's side, one 4 KiB read of
 * sector 0 on a queue, then waiting for its completion interrupt as Linux
 * does (reap, re-enable interrupts, sleep on the line only if nothing came
 * in between), so a lost interrupt shows as a guest that never returns.
 */
final class GuestRead {
    private GuestRead() {
    }

    /** The machine, started with {@code sw} and booted (the firmware assigns the BARs); the caller closes it. */
    static Machine twoQueueMachine(LegacySwitches sw) {
        DiskSpec disk = DiskSpec.nullDevice(64L << 20).withQueues(2).withIothreads(List.of("io0", "io1"))
                .withErrorInjection();
        Machine m = Machine.start(MachineConfig.of(2, 2, List.of(disk)).withLegacy(sw));
        try {
            m.boot();
            return m;
        } catch (RuntimeException | Error e) {
            m.close();
            throw e;
        }
    }

    /** Queue 1 of the disk, as the Linux-like driver (probed on vCPU 0, both queues, EVENT_IDX) sets it up. */
    static BlkQueue queueOne(Machine m) {
        return LinuxGuest.probe(m, 0, 2, 256, true).driver().queue(1);
    }

    /**
     * Runs the read on vCPU {@code vcpu}; the future completes with the
     * request's status byte. {@code waiting}, if not null, completes when the
     * guest goes to sleep on its interrupt line with nothing to reap: from
     * then on only an interrupt can wake it.
     */
    static CompletableFuture<Integer> sectorZero(Machine m, int vcpu, BlkQueue q, CompletableFuture<Void> waiting) {
        return m.runOnVcpu(vcpu, "read, then wait for its interrupt", p -> {
            q.bindTo(p);
            q.allocateSlots(1, 4096);
            q.submit(0, VirtioBlkAbi.T_IN, 0, 4096);
            q.kick();
            return awaitStatus(q, p.interrupts(), waiting);
        });
    }

    /**
     * The driver's wait for its one request: reap, else re-enable interrupts
     * and sleep on the line (completing {@code waiting}, if not null, first).
     * Returns the request's status byte.
     */
    static int awaitStatus(BlkQueue q, InterruptLine irq, CompletableFuture<Void> waiting) {
        for (;;) {
            int slot = q.reap();
            if (slot >= 0) {
                return q.status(slot);
            }
            if (q.enableInterrupts()) {
                if (waiting != null) {
                    waiting.complete(null);
                }
                irq.await(-1);
            }
        }
    }
}
