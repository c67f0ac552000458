package io.vblk.guest;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.function.BooleanSupplier;

import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * The Linux-like guest on a booted machine: the virtio-blk driver probed on
 * vCPU 0, then one workload per queue, each on its own vCPU, as blk-mq maps
 * one hardware queue per CPU. Used by tests and by {@code vblk bench}.
 */
public final class LinuxGuest {
    private final Machine machine;
    private final VirtioBlkGuest driver;

    private LinuxGuest(Machine machine, VirtioBlkGuest driver) {
        this.machine = machine;
        this.driver = driver;
    }

    /** Probes disk {@code disk} (the firmware must have run, so its BARs are assigned). */
    public static LinuxGuest probe(Machine m, int disk, int maxQueues, int queueSize, boolean eventIdx) {
        GuestAllocator mem = new GuestAllocator(Machine.DRIVER_RAM_START, m.config().ramBytes());
        VirtioBlkGuest.Options o = new VirtioBlkGuest.Options(Math.min(maxQueues, m.vcpus()), queueSize, eventIdx,
                m.vcpus());
        int bdf = m.disk(disk).bdf();
        VirtioBlkGuest d = m.await("guest driver probe",
                m.runOnVcpu(0, "virtio-blk probe", p -> VirtioBlkGuest.probe(p, bdf, mem, o)), Duration.ofSeconds(60));
        return new LinuxGuest(m, d);
    }

    public VirtioBlkGuest driver() {
        return driver;
    }

    /** The workloads of a run, one per queue; each future completes when its workload ended. */
    public record Run(List<GuestWorkload> workloads, List<CompletableFuture<Void>> done) {
        public long completed() {
            long n = 0;
            for (GuestWorkload w : workloads) {
                n += w.stats.completed;
            }
            return n;
        }

        public String firstProblem() {
            for (GuestWorkload w : workloads) {
                if (w.stats.firstProblem != null) {
                    return w.stats.firstProblem;
                }
            }
            return null;
        }
    }

    /**
     * Starts one workload per queue on vCPU q; they run until {@code stop}
     * says so and drain their requests. {@code sinks} (one per queue, may be null) take latencies.
     */
    public Run start(GuestWorkload.Spec spec, BooleanSupplier stop, LatencySink[] sinks, long seed) {
        int nq = driver.numQueues();
        List<GuestWorkload> ws = new ArrayList<>();
        List<CompletableFuture<Void>> fs = new ArrayList<>();
        for (int q = 0; q < nq; q++) {
            int queue = q;
            MachinePlatform p = machine.vcpu(q).platform();
            GuestWorkload w = new GuestWorkload(p, driver.queue(q), p.interrupts(), spec, driver.capacity(), q, nq,
                    seed + q);
            ws.add(w);
            LatencySink sink = sinks == null || sinks[q] == null ? LatencySink.NONE : sinks[q];
            fs.add(machine.runOnVcpu(q, "workload vq" + queue, pl -> {
                w.run(stop, sink);
                return null;
            }));
        }
        return new Run(ws, fs);
    }

    /**
     * After a run ended: one read on each queue from its vCPU, interrupts
     * asked for before it is submitted, then the vCPU waits for its queue's
     * vector without a look at the ring first. Completes with the number of
     * queues whose interrupt came within {@code bound} with the read done;
     * interrupts the run left pending are taken first. Needs a run first (it
     * reuses slot 0). It shows completions reach the vCPUs by MSI-X, which a
     * run's interrupt count cannot: on a starved machine a vCPU can find
     * completions already there every time it looks and never wait (the soak
     * saw a run where one queue took none).
     */
    public CompletableFuture<Integer> interruptOnEveryQueue(Duration bound) {
        int nq = driver.numQueues();
        List<CompletableFuture<Boolean>> fs = new ArrayList<>();
        for (int q = 0; q < nq; q++) {
            BlkQueue bq = driver.queue(q);
            fs.add(machine.runOnVcpu(q, "interrupt check vq" + q, p -> {
                while (p.interrupts().poll() >= 0) {
                    // signals the run's completions left pending (its vCPU found the entries without waiting)
                }
                bq.enableInterrupts();
                bq.submit(0, VirtioBlkAbi.T_IN, 0, 512);
                bq.kick();
                // the run's last signal can still arrive after the drain above (a device publishes used.idx, then
                // signals): an interrupt with nothing to reap is that one, and the wait goes on
                long end = System.nanoTime() + bound.toNanos();
                for (long left = bound.toNanos(); left > 0; left = end - System.nanoTime()) {
                    if (p.interrupts().await(left) == bq.vector() && bq.reap() == 0) {
                        if (bq.status(0) != VirtioBlkAbi.S_OK) {
                            throw new IllegalStateException("vq" + bq.index() + ": the read failed, status "
                                    + bq.status(0));
                        }
                        return true;
                    }
                }
                return false;
            }));
        }
        return CompletableFuture.allOf(fs.toArray(CompletableFuture[]::new))
                .thenApply(v -> (int) fs.stream().filter(CompletableFuture::join).count());
    }
}
