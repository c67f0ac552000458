package io.vblk.block;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.HangDetectedException;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.LegacySwitches;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 009 (QEMU 7f16476fab) at the backend itself: a request that reaches a
 * backend inside a drained begin — here from a BH the drain's own poll runs —
 * parks until drained end. Fixed, it does not count in the backend's
 * in-flight count and the drain returns; with
 * {@link LegacyBehavior#BLK_IN_FLIGHT_WHILE_QUEUED} it keeps counting and the
 * drain waits for a request that can only resume after the drain.
 * (Scenario 009 stages the same with a guest request crossing from io1.)
 */
@Tag("concurrency")
class Bug009ParkedRequestTest {
    private static BlockBackend open(BlockTestSupport t) {
        return t.main("open", () -> {
            BlockNode n = t.layer.openNull("n0", NullDriver.Options.of(1 << 20));
            BlockBackend b = t.layer.newBackend("blk0");
            b.attach(n);
            n.unref();
            return b;
        });
    }

    /** Schedules a read in the main loop, then drains: the read arrives inside the drain's poll. */
    private static CompletableFuture<Integer> drainWithReadArriving(BlockTestSupport t, BlockBackend blk,
                                                                    AtomicInteger completions, int[] inFlightWhileParked) {
        BlockTestSupport.Buf buf = new BlockTestSupport.Buf(4096);
        return t.loop.submit("read arrives during drained begin", () -> {
            t.loop.context().bhScheduleOneshot("guest read", () -> blk.preadv(0, 4096, buf.iov, 0, ret -> {
                assertEquals(0, ret);
                completions.incrementAndGet();
            }));
            try (DrainedSection s = blk.drainedBegin()) {
                inFlightWhileParked[0] = blk.inFlight();
                return completions.get();
            }
        });
    }

    @Test
    void fixedParkedRequestDoesNotCountAndTheDrainReturns() {
        try (BlockTestSupport t = new BlockTestSupport()) {
            BlockBackend blk = open(t);
            AtomicInteger completions = new AtomicInteger();
            int[] inFlight = {-1};
            int doneInSection = t.watchdog().await("drain", drainWithReadArriving(t, blk, completions, inFlight));
            assertEquals(0, doneInSection, "the read parked until drained end");
            assertEquals(0, inFlight[0], "a parked request is not in flight");
            t.main("the resubmitted read completes", () -> io.vblk.aio.AioWait.pollWhile(t.loop.context(),
                    () -> completions.get() == 0));
            assertEquals(1, completions.get());
            assertEquals(0, blk.inFlight());
        }
    }

    @Test
    void legacyParkedRequestKeepsItsReferenceAndTheDrainHangs() {
        LegacySwitches sw = new LegacySwitches();
        sw.enable(LegacyBehavior.BLK_IN_FLIGHT_WHILE_QUEUED);
        try (BlockTestSupport t = new BlockTestSupport(sw)) {
            BlockBackend blk = open(t);
            AtomicInteger completions = new AtomicInteger();
            int[] inFlight = {-1};
            CompletableFuture<Integer> drain = drainWithReadArriving(t, blk, completions, inFlight);
            HangDetectedException e = assertThrows(HangDetectedException.class,
                    () -> t.loop.watchdog(BlockTestSupport.HANG).await("drain", drain));
            assertTrue(e.dump().contains("backend 'blk0' -> 'n0' in_flight=1 quiesce=1 queued=1"), e.dump());
            // the same state with the switch off is not a hang: the drain, woken, returns
            sw.disable(LegacyBehavior.BLK_IN_FLIGHT_WHILE_QUEUED);
            t.loop.context().bhScheduleOneshot("recheck", () -> { });
            assertEquals(0, t.watchdog().await("drain after the switch went off", drain));
            t.main("the resubmitted read completes", () -> io.vblk.aio.AioWait.pollWhile(t.loop.context(),
                    () -> completions.get() == 0));
            assertEquals(1, completions.get());
        }
    }
}
