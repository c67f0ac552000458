package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioContext;
import io.vblk.aio.HangDetectedException;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.LoopHold;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CopyOnWriteArrayList;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Seed 001: moving a node out of a context must run that context's pending
 * BHs first. Here the BH is the one the move itself leaves behind: the
 * drain at the start of the move schedules the driver's drain-end hook in
 * the old context, counted in flight. The old IOThread is held before its
 * next poll (it has simply not run the BH yet). Fixed, the move's quiesce runs
 * it while the node is still in the old context. Legacy, the node leaves
 * with the BH stranded in the old context: its in-flight count stays raised,
 * so the node cannot be drained in its new home, and when the BH finally
 * runs it does so after the node moved.
 */
@Tag("concurrency")
class Seed001DetachQuiesceTest {

    /** A null-like driver that records where its drain-end hook ran and arms a hold when told. */
    static final class HookDriver extends BlockDriver {
        volatile Runnable onDrainBegin;
        volatile Thread drainEndThread;
        volatile AioContext nodeContextAtDrainEnd;
        /** Every drain-end run as "thread@node-context". */
        final List<String> drainEnds = new CopyOnWriteArrayList<>();

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
            drainEndThread = Thread.currentThread();
            nodeContextAtDrainEnd = node().context();
            drainEnds.add(Thread.currentThread().getName() + "@" + node().context().name());
        }
    }

    @ParameterizedTest(name = "legacy={0}")
    @ValueSource(booleans = {false, true})
    void detachRunsTheOldContextsPendingBhs(boolean legacy) {
        LegacySwitches sw = new LegacySwitches();
        try (BlockTestSupport t = new BlockTestSupport(sw)) {
            IOThread io0 = t.iothread("io0");
            AioContext main = t.loop.context();
            HookDriver drv = new HookDriver();
            BlockNode node = t.main("open", () -> {
                BlockNode n = t.layer.addNode("disk", drv, false);
                t.layer.setAioContext(n, io0.context());
                return n;
            });
            sw.set(LegacyBehavior.NO_BH_QUIESCE_ON_DETACH, legacy); // only for the move under test
            LoopHold[] hold = new LoopHold[1];
            // when the move's drain reaches io0, io0 is held before its next poll: it has not run the drain-end BH
            drv.onDrainBegin = () -> hold[0] = LoopHold.atNextPoll(io0.context());
            drv.drainEndThread = null;
            t.main("move io0 -> main", () -> t.layer.setAioContext(node, main));
            assertSame(main, node.context());
            assertNotNull(hold[0]);
            try {
                if (!legacy) {
                    assertEquals(0, node.inFlight());
                    assertNotNull(drv.drainEndThread, "the quiesce ran the drain-end BH before detaching");
                    assertSame(io0.context(), drv.nodeContextAtDrainEnd, "it ran while the node still lived in io0");
                    t.main("drain in the new home", node::drain);
                } else {
                    assertNull(drv.drainEndThread, "the drain-end BH was left behind in io0");
                    assertEquals(1, node.inFlight());
                    CompletableFuture<Void> drain = t.loop.run("drain in the new home", node::drain);
                    HangDetectedException hang = assertThrows(HangDetectedException.class,
                            () -> t.loop.watchdog(BlockTestSupport.HANG).await("drain of 'disk' in the main loop", drain));
                    assertTrue(hang.dump().contains("pending BHs (1): [drain-end:disk]"), hang.dump());
                    assertTrue(hang.dump().contains("node 'disk' (hook) ctx=main-loop in_flight=1"), hang.dump());
                    hold[0].release();
                    t.watchdog().await("drain after io0 finally ran the stranded BH", drain);
                    assertTrue(drv.drainEnds.contains("io0@main-loop"),
                            "the stranded BH ran in io0 after the node had moved to the main loop: " + drv.drainEnds);
                }
            } finally {
                hold[0].release();
            }
        }
    }
}
