package io.vblk.guest.scenario;

import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.time.Duration;

/**
 * Seed 001 at the block layer: moving a node out of an IOThread must run
 * that IOThread's pending bottom halves first ("quiesce AioContext when
 * detaching from it"). The BH here is the one the move itself leaves
 * behind: the drain at the start of the move schedules the driver's
 * drain-end hook in the old context, counted in flight. io0 is held before
 * its next poll — it simply has not run the BH yet (a {@link LoopHold},
 * the same in both modes).
 * <ul>
 * <li>Fixed: the move quiesces io0 with non-blocking polls from the main
 *     loop, the hook runs while the node still lives in io0, and the node
 *     drains in its new home at once.</li>
 * <li>Legacy ({@link LegacyBehavior#NO_BH_QUIESCE_ON_DETACH}): the node
 *     leaves with the BH stranded in io0 and its in-flight count raised; the
 *     next drain of the node, in the main loop, waits for a BH that only io0
 *     can run — io0 is stuck, and even released it would run the hook for a
 *     node that has moved.</li>
 * </ul>
 * (The mechanism of blockcore's {@code Seed001DetachQuiesceTest}, as a
 * runnable scenario; the dataplane half of seed 001 is
 * {@code Seed001DataplaneStop}.)
 */
public final class Seed001DetachBh implements Scenario {
    @Override
    public String id() {
        return "seed-001";
    }

    @Override
    public String title() {
        return "detach-with-pending-bh";
    }

    @Override
    public String upstreamCommit() {
        return "c2b6428d38";
    }

    @Override
    public String summary() {
        return "bdrv_set_aio_context detached a node without running the old context's pending BHs: a BH "
                + "stranded in the IOThread keeps the node's in_flight raised";
    }

    @Override
    public String explain() {
        return "Seed 001 (c2b6428d38, \"block: quiesce AioContext when detaching from it\"), block-layer half.\n"
                + "Threads: the main loop and IOThread io0; seam: a LoopHold holds io0 before its next poll "
                + "(armed in the node's drain-begin hook, the same in both runs), so io0 has simply not run its "
                + "BHs yet.\n"
                + "Steps: a node in io0 is moved to the main context; the move's drain schedules the driver's "
                + "drain-end hook as a BH in io0, counted in flight; then the node is drained in its new home.\n"
                + "Fix: the move quiesces io0 with non-blocking polls from the main loop (allowed from a "
                + "foreign thread), so the hook runs while the node still lives in io0 and the later drain "
                + "completes at once.\n"
                + "Legacy (NO_BH_QUIESCE_ON_DETACH) reverts only the quiesce: the node leaves with the BH "
                + "stranded in io0 and in_flight 1; the drain in the main loop waits for a BH only io0 can run, "
                + "and the watchdog reports the hang.";
    }

    /** A null-like driver whose drain-begin hook arms the hold, and which records where its drain-end hook ran. */
    private static final class HookDriver extends BlockDriver {
        volatile Runnable onDrainBegin;
        volatile AioContext drainEndNodeContext;

        @Override
        public String formatName() {
            return "hook";
        }

        @Override
        public long length() {
            return 1 << 20;
        }

        @Override
        public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
            cb.complete(0);
        }

        @Override
        public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
            cb.complete(0);
        }

        @Override
        public void flush(BlockCompletion cb) {
            cb.complete(0);
        }

        @Override
        public void drainBegin() {
            Runnable r = onDrainBegin;
            onDrainBegin = null;
            if (r != null) {
                r.run();
            }
        }

        @Override
        public void drainEnd() {
            drainEndNodeContext = node().context();
        }
    }

    @Override
    public ScenarioResult run(boolean legacy, Duration hangBound) throws Exception {
        LegacySwitches sw = new LegacySwitches();
        Duration ok = Duration.ofSeconds(60);
        try (MainLoop loop = new MainLoop(sw); BlockLayer layer = new BlockLayer(loop)) {
            IOThread io0 = loop.newIOThread("io0");
            AioContext main = loop.context();
            HookDriver drv = new HookDriver();
            BlockNode node = loop.watchdog(ok).call("open in io0", () -> {
                BlockNode n = layer.addNode("disk", drv, false);
                layer.setAioContext(n, io0.context());
                return n;
            });
            sw.set(LegacyBehavior.NO_BH_QUIESCE_ON_DETACH, legacy);
            LoopHold[] hold = new LoopHold[1];
            drv.onDrainBegin = () -> hold[0] = LoopHold.atNextPoll(io0.context());
            try {
                long t0 = System.nanoTime();
                loop.watchdog(ok).run("move io0 -> main", () -> layer.setAioContext(node, main));
                long moved = System.nanoTime() - t0;
                AioContext hookRanIn = drv.drainEndNodeContext; // where the move's own drain-end hook ran, if it did
                Staged<Void> drain = Staged.await(loop.watchdog(hangBound), "drain of 'disk' in its new home",
                        loop.run("drain in the new home", node::drain));
                if (drain.hung()) {
                    return new ScenarioResult(id(), title(), legacy, true, drain.nanos(), hangBound,
                            "the drain-end BH was stranded in io0: the node keeps in_flight=" + node.inFlight(),
                            drain.dump());
                }
                if (hookRanIn != io0.context()) {
                    throw new IllegalStateException(id() + ": the drain-end hook did not run in io0 before the move");
                }
                return new ScenarioResult(id(), title(), legacy, false, moved + drain.nanos(), hangBound,
                        "the move ran io0's pending BH before detaching", null);
            } finally {
                if (hold[0] != null) {
                    hold[0].release();
                }
            }
        }
    }
}
