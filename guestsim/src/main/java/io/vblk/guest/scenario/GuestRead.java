package io.vblk.guest.scenario;

import io.vblk.guest.BlkQueue;
import io.vblk.guest.InterruptLine;
import io.vblk.guest.Machine;
import io.vblk.virtio.blk.VirtioBlkAbi;

import java.util.concurrent.CompletableFuture;

/**
 * The guest side the dataplane scenarios share: one 4 KiB read of sector 0
 * on a queue, then waiting for its completion interrupt as Linux does
 * (reap, re-enable interrupts, sleep on the line only if nothing came in
 * between), so a lost interrupt shows as a guest that never returns.
 */
final class GuestRead {
    private GuestRead() {
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
            InterruptLine irq = p.interrupts();
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
        });
    }
}
