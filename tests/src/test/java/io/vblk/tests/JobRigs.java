package io.vblk.tests;

import io.vblk.aio.AioContextLock;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.qcow2.Qcow2;
import io.vblk.firmware.Firmware;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

/** A qcow2 chain with known contents, a machine using it on an IOThread, and a verifying guest program. */
final class JobRigs {
    static final Duration OK = Duration.ofSeconds(90);
    static final long SIZE = 8L << 20;

    private JobRigs() {
    }

    /**
     * base.qcow2 <- mid.qcow2 <- top.qcow2, filled host-side: base every 2nd
     * block; mid every block of every 3rd 64 KiB cluster; top every 3rd block
     * of every 5th cluster — so each layer has clusters of its own to copy.
     */
    static Path[] chain(Path dir, DiskModel model) {
        Path base = dir.resolve("base.qcow2");
        Path mid = dir.resolve("mid.qcow2");
        Path top = dir.resolve("top.qcow2");
        Qcow2.create(base, SIZE);
        Qcow2.create(mid, 0, Qcow2.DEFAULT_CLUSTER_SIZE, base.toString(), "qcow2");
        Qcow2.create(top, 0, Qcow2.DEFAULT_CLUSTER_SIZE, mid.toString(), "qcow2");
        try (MainLoop loop = new MainLoop(); BlockLayer layer = new BlockLayer(loop)) {
            loop.watchdog(OK).run("fill the chain", () -> {
                BlockNode t = layer.openImage("top", top, "qcow2", false);
                BlockNode m = t.child(ChildRole.BACKING);
                BlockNode b = m.child(ChildRole.BACKING);
                fill(b, model, blk -> blk % 2 == 0, -1);
                fill(m, model, blk -> (blk / 16) % 3 == 0, -2);
                fill(t, model, blk -> (blk / 16) % 5 == 0 && blk % 3 == 0, -3);
                t.unref();
            });
        }
        return new Path[] {base, mid, top};
    }

    private static void fill(BlockNode n, DiskModel model, java.util.function.IntPredicate which, long tag) {
        boolean ro = n.isReadOnly();
        if (ro) {
            BlockReopen.setReadOnly(n, false);
        }
        for (int b = 0; b < model.blocks(); b++) {
            if (which.test(b)) {
                model.set(b, tag);
            }
        }
        DiskModel.writeAll(n, model, which);
        if (n.flushSync() < 0) {
            throw new AssertionError("flush failed");
        }
        if (ro) {
            BlockReopen.setReadOnly(n, true);
        }
    }

    /** A machine with the chain's top on io0 (or the main loop), the firmware run (its BARs assigned). */
    static Machine machine(Path top, boolean dataplane) {
        MachineConfig cfg = MachineConfig.of(1, 1, List.of(DiskSpec.image(top, "qcow2")
                        .withIothreads(dataplane ? List.of("io0") : List.of())))
                .withFirmware(new Firmware.Options(Duration.ofSeconds(30), Duration.ofSeconds(30)));
        Machine m = Machine.start(cfg);
        m.boot(); // no MBR on this disk: the firmware only has to find the device and assign its BARs
        return m;
    }

    /** The guest: the Linux-like driver on disk 0 running a verifying workload on vCPU 0. */
    static final class Guest {
        final ModelWorkload workload;
        final CompletableFuture<Void> done;
        final AtomicBoolean stop = new AtomicBoolean();
        private final Machine m;

        Guest(Machine m, DiskModel model, AtomicLong tags, long seed) {
            this.m = m;
            LinuxGuest g = LinuxGuest.probe(m, 0, 1, 256, true);
            workload = new ModelWorkload(model, g.driver().queue(0), 8, 40, tags, seed, 0, model.blocks());
            done = m.runOnVcpu(0, "verifying workload", p -> workload.run(p, stop::get));
        }

        /** Waits (bounded) until the guest completed {@code more} further requests. */
        void progress(long more) {
            m.await("guest I/O", workload.whenCompleted(workload.completed + more), OK);
        }

        /** Stops the program, waits for it to drain, returns its first problem (or null). */
        String finish() {
            stop.set(true);
            m.await("guest workload drained", done, OK);
            return workload.problem;
        }
    }

    static <T> T main(Machine m, String what, java.util.concurrent.Callable<T> task) {
        return m.watchdog(OK).call(what, task);
    }

    /**
     * Writes every node's metadata back, as QEMU's {@code bdrv_close_all} at
     * exit does (Machine.close leaves the nodes open): a qcow2 image keeps
     * recent allocations in its L2 cache until a flush.
     */
    static void writeBack(Machine m) {
        int r = main(m, "inactivate all (write back)", () -> m.blockLayer().inactivateAll());
        if (r < 0) {
            throw new AssertionError("writing the images back failed: " + r);
        }
    }

    static String verifyDevice(Machine m, DiskModel model) {
        return main(m, "read every block of the device", () -> model.verifyAll(m.disk(0).backend().root()));
    }

    static AioContextLock.Held own(BlockNode n) {
        return n.context().inHomeThread() ? null : n.context().acquire();
    }
}
