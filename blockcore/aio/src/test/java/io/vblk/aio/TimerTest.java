package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class TimerTest {

    @Test
    void timersFireInDeadlineOrderNeverEarlyAndCancelledOnesNever() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            List<String> fired = Collections.synchronizedList(new ArrayList<>());
            List<String> early = Collections.synchronizedList(new ArrayList<>());
            CountDownLatch done = new CountDownLatch(4);
            // The IOThread held at its sleep point (notify_me announced, no timer armed, so an
            // unbounded wait) while this thread arms, re-arms and cancels: no timer fires before
            // the arming is done however slowly this thread runs, and the sleeper still has to be
            // woken by the foreign arming to see its first deadline.
            LoopHold hold = loop.watchdog(Loops.OK).await("arm", ctx.submit("arm", () -> LoopHold.atNextSleep(ctx)));
            hold.awaitHeld(loop.watchdog(Loops.OK), "IOThread at its sleep point");
            long base = System.nanoTime();
            long[] delaysMs = {40, 10, 30, 20};
            for (long d : delaysMs) {
                long deadline = base + TimeUnit.MILLISECONDS.toNanos(d);
                AioTimer[] t = new AioTimer[1];
                t[0] = ctx.timerNew("t" + d, () -> {
                    if (System.nanoTime() < deadline) {
                        early.add("t" + d);
                    }
                    fired.add("t" + d);
                    done.countDown();
                });
                t[0].modNs(deadline); // armed from a foreign thread
            }
            AioTimer cancelled = ctx.timerNew("cancelled", () -> fired.add("cancelled"));
            cancelled.modNs(base + TimeUnit.MILLISECONDS.toNanos(15));
            AioTimer rearmed = ctx.timerNew("rearmed", () -> fired.add("rearmed"));
            rearmed.modNs(base + TimeUnit.MILLISECONDS.toNanos(5));
            rearmed.modNs(base + TimeUnit.MILLISECONDS.toNanos(35)); // re-arming moves it, once
            cancelled.del();
            assertFalse(cancelled.isPending());
            hold.release();
            Loops.await(loop, done, "timers");
            Loops.roundTrip(loop, ctx);
            assertEquals(List.of("t10", "t20", "t30", "rearmed", "t40"), fired);
            assertTrue(early.isEmpty(), "fired early: " + early);
            assertEquals(0, ctx.armedTimers());
        }
    }

    @Test
    void aTimerBoundsTheBlockingWait() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0", 0);
            AioContext ctx = io.context();
            CountDownLatch fired = new CountDownLatch(1);
            // armed from the home thread itself: no notification, the next sleep must still end on time
            ctx.bhScheduleOneshot(() -> ctx.timerNew("self", fired::countDown).modInNs(TimeUnit.MILLISECONDS.toNanos(5)));
            Loops.await(loop, fired, "timer armed in the home thread");
        }
    }
}
