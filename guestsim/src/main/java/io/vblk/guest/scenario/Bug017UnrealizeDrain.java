package io.vblk.guest.scenario;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.block.BlkDebugDriver;
import io.vblk.guest.BlkQueue;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.virtio.blk.RequestObserver;
import io.vblk.virtio.blk.VirtioBlk;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 017, QEMU 7bfde688fb "virtio-blk: Add blk_drain() to
 * virtio_blk_device_unrealize()": a device unplugged by a guest that never
 * reset it (Windows) was torn down with a request still in the backend, and
 * that request's completion then notified the freed device.
 */
public final class Bug017UnrealizeDrain implements Scenario {
    @Override
    public String id() {
        return "017-unrealize-drain";
    }

    @Override
    public String title() {
        return "drain-before-unrealize";
    }

    @Override
    public String upstreamCommit() {
        return "7bfde688fb";
    }

    @Override
    public String summary() {
        return "virtio_blk_device_unrealize did not drain: a request completing after device_del pushed to freed "
                + "rings and notified a freed device (a segfault on unplug from a Windows guest)";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (serves the disk's queue without a dataplane, runs the unplug), vCPU 0 (the "
                        + "guest driver).",
                "Steps: the guest reads sector 0 and waits for its interrupt; the read is held in the backend (a "
                        + "blkdebug suspension). The guest does not reset the device (Windows does not before an "
                        + "unplug). One main-loop task then lets the read go (blkdebug schedules its resumption as a "
                        + "bottom half in the main context) and unrealizes the device (Machine.unrealizeDisk: "
                        + "dataplane stop if any, then VirtioBlk.unrealize), so the completion is always behind the "
                        + "unplug in the main loop: the same seam in both runs.",
                "Fix: unrealize drains the backend before it tears the queues down (QEMU: blk_drain at the top of "
                        + "virtio_blk_device_unrealize). The drain polls the main context, the read completes, its "
                        + "status is pushed and the guest is interrupted while the device still exists; then the "
                        + "device is torn down.",
                "Legacy (" + LegacyBehavior.NO_DRAIN_IN_UNREALIZE + ") drops exactly that drain: the device is torn "
                        + "down with the read in flight, and the completion the main loop runs next reaches an "
                        + "unrealized device. QEMU went on into freed memory (virtio_notify on a freed VirtIOBlock, "
                        + "RHBZ 1706759); vblk's device counts such a completion and writes nothing "
                        + "(VirtioBlk.completionsAfterUnrealize, whatever the switch), which is the failure this "
                        + "scenario names; the guest never gets its interrupt.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.NO_DRAIN_IN_UNREALIZE, legacy);
        DiskSpec disk = DiskSpec.nullDevice(64L << 20).withErrorInjection();
        try (Machine m = Machine.start(MachineConfig.of(1, 0, List.of(disk)).withLegacy(sw))) {
            m.boot();
            BlkQueue q0 = LinuxGuest.probe(m, 0, 1, 256, true).driver().queue(0);
            VirtioBlk dev = m.disk(0).device();
            BlkDebugDriver dbg = (BlkDebugDriver) m.disk(0).backend().root().driver();
            BlkDebugDriver.Suspension inBackend = dbg.suspend("the guest's read", BlkDebugDriver.Op.READ, 0, 4096);
            CompletableFuture<Void> blkDone = new CompletableFuture<>();
            dev.setObserver(new RequestObserver() {
                @Override
                public void blockCompleted(int queue, boolean handedOff) {
                    blkDone.complete(null); // after the device answered it, or refused it as unrealized
                }
            });
            CompletableFuture<Void> waiting = new CompletableFuture<>();
            CompletableFuture<Integer> guest = GuestRead.sectorZero(m, 0, q0, waiting);
            m.await("the read held in the backend", inBackend.reached(), Duration.ofSeconds(30));
            m.await("the guest waiting for its interrupt", waiting, Duration.ofSeconds(30));
            long t0 = System.nanoTime();
            m.await("device_del", m.mainLoop().run("let the read go, then device_del", () -> {
                inBackend.resume(); // its completion: a main-context BH behind this task
                m.unrealizeDisk(0);
            }), Duration.ofSeconds(30));
            // The completion runs in the main loop after the unplug (legacy) or inside its drain (fixed).
            m.await("the read's completion reaching the device", blkDone, Duration.ofSeconds(30));
            long ns = System.nanoTime() - t0;
            long late = dev.completionsAfterUnrealize();
            if (late > 0) {
                String guestSide;
                try {
                    guestSide = "the guest got status " + m.await("the guest's read", guest, hangBound);
                } catch (HangDetectedException e) {
                    guestSide = "the guest waits for its interrupt";
                }
                return new ScenarioResult(id(), title(), legacy, true, "completes a request on an unplugged device",
                        ns, hangBound, late + " completion(s) reached virtio-blk0 after unrealize; " + guestSide,
                        null);
            }
            int status;
            try {
                status = m.await("the guest's read", guest, hangBound);
            } catch (HangDetectedException e) {
                return new ScenarioResult(id(), title(), legacy, true, "loses the guest's interrupt",
                        System.nanoTime() - t0, hangBound, "no completion after unrealize, yet the guest waits",
                        e.dump());
            }
            if (!dev.isUnrealized()) {
                throw new IllegalStateException(id() + ": the device was not unrealized; not staged");
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    "unrealize drained the read first: guest status " + status + ", then the device was torn down",
                    null);
        }
    }
}
