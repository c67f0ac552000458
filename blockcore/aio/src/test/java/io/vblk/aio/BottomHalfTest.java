package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

@Tag("concurrency")
class BottomHalfTest {
    private MainLoop loop;
    private IOThread io;

    @BeforeEach
    void setUp() {
        loop = new MainLoop();
        io = loop.newIOThread("io0", 0);
    }

    @AfterEach
    void tearDown() {
        loop.close();
    }

    @Test
    void hundredThousandCrossThreadOneshotsEachRunExactlyOnce() throws Exception {
        final int n = 100_000;
        final int producers = 4;
        AtomicIntegerArray runs = new AtomicIntegerArray(n);
        CountDownLatch done = new CountDownLatch(n);
        Thread ioThread = io.thread();
        AtomicInteger wrongThread = new AtomicInteger();
        List<Thread> threads = new ArrayList<>();
        for (int p = 0; p < producers; p++) {
            final int first = p;
            Thread t = new Thread(() -> {
                for (int i = first; i < n; i += producers) {
                    final int idx = i;
                    io.context().bhScheduleOneshot(() -> {
                        if (Thread.currentThread() != ioThread) {
                            wrongThread.incrementAndGet();
                        }
                        runs.incrementAndGet(idx);
                        done.countDown();
                    });
                }
            });
            threads.add(t);
            t.start();
        }
        for (Thread t : threads) {
            t.join();
        }
        Loops.await(loop, done, "100,000 one-shot BHs");
        Loops.roundTrip(loop, io.context());
        for (int i = 0; i < n; i++) {
            assertEquals(1, runs.get(i), "BH " + i + " ran " + runs.get(i) + " times");
        }
        assertEquals(0, wrongThread.get(), "BHs must run in the IOThread");
        assertTrue(loop.failures().isEmpty(), loop.failures().toString());
    }

    /** Runs {@code body} in the IOThread (where it may poll its own context) and waits for it. */
    private void inIoThread(String what, Runnable body) {
        loop.watchdog(Loops.OK).await(what, io.context().run(what, body));
    }

    @Test
    void batchRunsNewestFirstAndLaterSchedulesWaitForTheNextPoll() {
        AioContext ctx = io.context();
        List<String> order = new ArrayList<>();
        BottomHalf late = ctx.bhNew("late", () -> order.add("late"));
        BottomHalf a = ctx.bhNew("a", () -> {
            order.add("a");
            late.schedule(); // scheduled while the batch runs: next poll
        });
        BottomHalf b = ctx.bhNew("b", () -> order.add("b"));
        BottomHalf c = ctx.bhNew("c", () -> order.add("c"));
        inIoThread("bh order", () -> {
            a.schedule();
            b.schedule();
            c.schedule();
            ctx.bhScheduleOneshot("after", () -> order.add("after"));
            assertTrue(ctx.poll(false), "a poll that runs BHs makes progress");
            assertEquals(List.of("after", "c", "b", "a"), order);
            assertTrue(ctx.poll(false));
            assertEquals(List.of("after", "c", "b", "a", "late"), order);
            assertFalse(ctx.poll(false), "nothing left: no progress");
        });
    }

    @Test
    void schedulingIsIdempotentWhilePendingAndABhMayRescheduleItself() {
        AioContext ctx = io.context();
        AtomicInteger runs = new AtomicInteger();
        AtomicInteger self = new AtomicInteger();
        BottomHalf once = ctx.bhNew("once", runs::incrementAndGet);
        BottomHalf[] again = new BottomHalf[1];
        again[0] = ctx.bhNew("again", () -> {
            if (self.incrementAndGet() < 5) {
                again[0].schedule();
            }
        });
        inIoThread("idempotent scheduling", () -> {
            once.schedule();
            once.schedule();
            once.schedule();
            assertTrue(ctx.poll(false));
            assertFalse(ctx.poll(false));
            assertEquals(1, runs.get());
            again[0].schedule();
            for (int i = 1; i <= 5; i++) {
                assertTrue(ctx.poll(false));
                assertEquals(i, self.get(), "a rescheduled BH runs once per poll");
            }
            assertFalse(ctx.poll(false));
        });
    }

    @Test
    void cancelledAndDeletedBhsDoNotRun() {
        AioContext ctx = io.context();
        AtomicInteger runs = new AtomicInteger();
        BottomHalf cancelled = ctx.bhNew("cancelled", runs::incrementAndGet);
        BottomHalf deleted = ctx.bhNew("deleted", runs::incrementAndGet);
        inIoThread("cancel and delete", () -> {
            cancelled.schedule();
            cancelled.cancel();
            deleted.schedule();
            deleted.delete();
            assertFalse(ctx.poll(false), "neither BH may run");
            assertEquals(0, runs.get());
            assertThrows(IllegalStateException.class, deleted::schedule);
            cancelled.schedule(); // a cancelled BH can be scheduled again
            assertTrue(ctx.poll(false));
            assertEquals(1, runs.get());
        });
    }

    /**
     * Regression: a BH that waits (a nested blocking poll) while a sibling of
     * its own batch — which the wait depends on — has not run yet. The nested
     * poll must run the rest of the batch instead of going to sleep.
     */
    @Test
    void aNestedWaitRunsTheRestOfItsOwnBatchInsteadOfSleeping() {
        AioContext ctx = io.context();
        java.util.concurrent.atomic.AtomicBoolean siblingRan = new java.util.concurrent.atomic.AtomicBoolean();
        java.util.concurrent.CompletableFuture<Boolean> waited = new java.util.concurrent.CompletableFuture<>();
        LoopHold hold = LoopHold.atNextPoll(ctx);
        ctx.bhScheduleOneshot("wake", () -> { });
        hold.awaitHeld(loop.watchdog(Loops.OK), "IOThread held before its next poll");
        // both land in one batch; newest first, so the waiter runs before its sibling
        ctx.bhScheduleOneshot("sibling", () -> siblingRan.set(true));
        ctx.bhScheduleOneshot("waiter", () -> waited.complete(AioWait.pollWhile(ctx, () -> !siblingRan.get())));
        hold.release();
        loop.watchdog(Loops.HANG).await("nested wait for a sibling BH", waited);
        assertTrue(siblingRan.get());
    }

    @Test
    void aThrowingBhIsLoggedAndTheRestOfItsBatchStillRuns() {
        AioContext ctx = io.context();
        AtomicInteger runs = new AtomicInteger();
        inIoThread("throwing BH", () -> {
            ctx.bhScheduleOneshot("ok-1", runs::incrementAndGet);
            ctx.bhScheduleOneshot("boom", () -> {
                throw new IllegalStateException("deliberate");
            });
            ctx.bhScheduleOneshot("ok-2", runs::incrementAndGet);
            assertTrue(ctx.poll(false));
        });
        assertEquals(2, runs.get());
        assertEquals(1, loop.failures().size());
        assertTrue(loop.failures().get(0).contains("boom"), loop.failures().toString());
        assertFalse(ctx.isClosed());
        assertEquals(1, ctx.callbackFailures());
    }
}
