package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.guest.DiskSpec;
import io.vblk.guest.LinuxGuest;
import io.vblk.guest.Machine;
import io.vblk.guest.MachineConfig;
import io.vblk.virtio.blk.VirtioBlk;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * Bug 014, QEMU 75dcb4d790 "virtio-blk: fix host notifier issues during
 * dataplane start/stop": the stop's own drains run the drain callbacks, which
 * re-attach the host notifiers the stop has just detached.
 */
public final class Bug014HostNotifiersStop implements Scenario {
    @Override
    public String id() {
        return "014-host-notifiers-stop";
    }

    @Override
    public String title() {
        return "host-notifiers-during-stop";
    }

    @Override
    public String upstreamCommit() {
        return "75dcb4d790";
    }

    @Override
    public String summary() {
        return "dataplane stop drained while dataplane_started was still true: the drain callbacks re-attached the "
                + "host notifiers it had detached, leaving handlers of cleaned-up notifiers in the AioContexts";
    }

    @Override
    public String explain() {
        return String.join("\n",
                "Threads: the main loop (runs the dataplane stop), io0 (serves the disk's two queues and the "
                        + "backend), vCPU 0 (the guest driver, which brings the device to DRIVER_OK).",
                "Steps: the guest probes the disk (the dataplane starts: each queue's ioeventfd handler is attached "
                        + "in io0); the switch is set now (the firmware's and the probe's resets stop the dataplane "
                        + "too), and the main loop stops the dataplane: it detaches the handlers in io0, then drains "
                        + "the backend and moves it back to the main loop (two drained sections, synchronous, so no "
                        + "step seam is needed), and cleans up the host notifiers. Then every AioContext's handler "
                        + "registrations are checked: no handler for a queue's notifier may remain.",
                "Since the fix the stop tears the host notifiers down and clears 'started' before it drains, so the "
                        + "drain callbacks (VirtioBlkDataplane.drainedBegin/drainedEnd, QEMU's "
                        + "virtio_blk_drained_begin/end) stay out of it; vblk's callbacks also stand aside while a "
                        + "stop is under way.",
                "Legacy switch HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN restores the pre-fix stop: the drains run "
                        + "with the dataplane still started (the callbacks key on 'started' alone) and the host "
                        + "notifiers are cleaned up after them. The drained-end of each drain re-attaches every "
                        + "queue's handler in io0; the cleanup then finds them attached. QEMU closed the fds under "
                        + "them (stale handlers, a main loop at 100% CPU); vblk's transport refuses to clean up a "
                        + "notifier whose handler is attached, so the stop fails there, and the handlers stay "
                        + "registered in io0. The start half of the fix (started set after the backend's move) is not "
                        + "reverted: vblk refuses a second attach of a notifier, so that half cannot be replayed.");
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches(); // switched for the staged stop only: boot and probe reset the device
        DiskSpec disk = DiskSpec.nullDevice(64L << 20).withQueues(2).withIothreads(List.of("io0"));
        try (Machine m = Machine.start(MachineConfig.of(2, 2, List.of(disk)).withLegacy(sw))) {
            m.boot(); // the firmware assigns the BARs
            LinuxGuest.probe(m, 0, 2, 256, true); // DRIVER_OK: the dataplane starts, handlers attached in io0
            VirtioBlk dev = m.disk(0).device();
            List<AioContext> contexts = new ArrayList<>();
            contexts.add(m.mainLoop().context());
            for (IOThread t : m.iothreads()) {
                contexts.add(t.context());
            }
            if (stale(dev, contexts).isEmpty()) {
                throw new IllegalStateException(id() + ": the dataplane attached no handler; not staged");
            }
            sw.set(LegacyBehavior.HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN, legacy);
            long t0 = System.nanoTime();
            CompletableFuture<Void> stop = m.mainLoop().run("dataplane stop", () -> m.disk(0).dataplane().stopIoeventfd());
            String refused = null;
            try {
                m.await("dataplane stop", stop, hangBound);
            } catch (HangDetectedException e) {
                return new ScenarioResult(id(), title(), legacy, true, System.nanoTime() - t0, hangBound,
                        "the dataplane stop did not finish", e.dump());
            } catch (RuntimeException e) {
                refused = e.getMessage(); // the transport refused to clean up a notifier still served
            }
            long ns = System.nanoTime() - t0;
            List<String> left = stale(dev, contexts);
            // Teardown: the machine's close stops the dataplane again, with the fix (the verdict is taken).
            sw.set(LegacyBehavior.HOST_NOTIFIERS_TORN_DOWN_AFTER_STOP_DRAIN, false);
            if (!left.isEmpty()) {
                return new ScenarioResult(id(), title(), legacy, true, "leaves host-notifier handlers after stop", ns,
                        hangBound, "still registered: " + String.join(", ", left)
                                + (refused == null ? "" : "; the stop failed: " + refused), m.dump());
            }
            if (refused != null) {
                throw new IllegalStateException(id() + ": the stop failed: " + refused);
            }
            return new ScenarioResult(id(), title(), legacy, false, ns, hangBound,
                    "no handler of a queue notifier left in " + contexts.size() + " AioContexts", null);
        }
    }

    /** The device's queue-notifier handlers registered in any of {@code contexts}, as "name in context". */
    private static List<String> stale(VirtioBlk dev, List<AioContext> contexts) {
        List<String> l = new ArrayList<>();
        String prefix = dev.name() + "-vq";
        for (AioContext c : contexts) {
            for (AioHandler h : c.handlers()) {
                if (h.name().startsWith(prefix) && h.name().endsWith("-kick")) {
                    l.add(h.name() + " in " + c.name());
                }
            }
        }
        return l;
    }
}
