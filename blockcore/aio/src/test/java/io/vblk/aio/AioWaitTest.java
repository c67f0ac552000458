package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

@Tag("concurrency")
class AioWaitTest {

    /**
     * Seed 000's shape: the callback that ends the wait (the last request
     * completing) also schedules a BH (the job's deferred completion). The fixed
     * pollWhile keeps polling while the last poll made progress, so the BH runs
     * inside the wait; the legacy loop returns with it still pending.
     */
    @ParameterizedTest(name = "legacy={0}")
    @ValueSource(booleans = {false, true})
    void seed000PollWhileRunsTheBhTheLastCompletionScheduled(boolean legacy) {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.POLL_WHILE_WITHOUT_BH_DRAIN, legacy);
        try (MainLoop loop = new MainLoop(sw)) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            AtomicInteger inFlight = new AtomicInteger(1);
            AtomicBoolean deferredRan = new AtomicBoolean();
            BottomHalf deferred = ctx.bhNew("job-defer-to-main-loop", () -> deferredRan.set(true));
            BottomHalf completion = ctx.bhNew("request-completion", () -> {
                deferred.schedule();
                inFlight.decrementAndGet();
            });
            loop.watchdog(Loops.OK).await("pollWhile", ctx.run("pollWhile", () -> {
                completion.schedule();
                assertTrue(AioWait.pollWhile(ctx, () -> inFlight.get() > 0));
                if (legacy) {
                    assertFalse(deferredRan.get(), "legacy pollWhile returns before the BH runs");
                    assertTrue(deferred.isScheduled(), "the BH is left pending");
                    assertTrue(ctx.poll(false));
                } else {
                    assertFalse(deferred.isScheduled());
                }
                assertTrue(deferredRan.get());
            }));
        }
    }

    @Test
    void mainLoopWaitsOnAnIothreadReleasingItsLockOnceAndIsKicked() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            AtomicInteger inFlight = new AtomicInteger(100);
            AtomicBoolean lastBhRan = new AtomicBoolean();
            int polled = loop.watchdog(Loops.OK).call("main waits for io0", () -> {
                try (AioContextLock.Held held = ctx.acquire()) {
                    for (int i = 0; i < 100; i++) {
                        ctx.bhScheduleOneshot("complete", () -> {
                            if (inFlight.decrementAndGet() == 0) {
                                ctx.bhScheduleOneshot("after-last", () -> lastBhRan.set(true));
                            }
                            ctx.aioWait().kick();
                        });
                    }
                    AioWait.pollWhile(ctx, () -> inFlight.get() > 0);
                    assertTrue(ctx.lock().isHeldByCurrentThread(), "the lock is held again after the wait");
                    assertEquals(1, ctx.lock().holdCount());
                }
                return inFlight.get();
            });
            assertEquals(0, polled);
            assertTrue(lastBhRan.get(), "the wait drained the BH the last completion scheduled");
            assertEquals(0, loop.aioWait().waiters());
        }
    }

    /**
     * The mechanism of seeds 002 and 003: the wait releases the context lock once,
     * so a caller holding it twice keeps the IOThread from the lock it needs to
     * complete the request. The watchdog reports the holder and its depth.
     */
    @Test
    void aWaitUnderARecursivelyHeldLockHangsAndTheDumpShowsTheDepth() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            AtomicInteger inFlight = new AtomicInteger(1);
            HangDetectedException hang = assertThrows(HangDetectedException.class,
                    () -> loop.watchdog(Loops.HANG).call("wait with the lock held twice", () -> {
                        try (AioContextLock.Held outer = ctx.acquire();
                             AioContextLock.Held inner = ctx.acquire()) {
                            ctx.bhScheduleOneshot("complete", () -> {
                                inFlight.decrementAndGet();
                                ctx.aioWait().kick();
                            });
                            AioWait.pollWhile(ctx, () -> inFlight.get() > 0);
                        }
                        return null;
                    }));
            assertTrue(hang.dump().contains("lock: held by 'main-loop' depth 1 (threads waiting)"), hang.dump());
            assertEquals(1, inFlight.get());
        }
    }

    @Test
    void waitingBetweenTwoIothreadsIsRefused() {
        try (MainLoop loop = new MainLoop()) {
            IOThread a = loop.newIOThread("io0");
            IOThread b = loop.newIOThread("io1");
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> loop.watchdog(Loops.OK)
                    .await("cross wait", a.context().run("cross", () -> AioWait.pollWhile(b.context(), () -> true))));
            assertTrue(e.getMessage().contains("only its home thread or the main loop"), e.getMessage());
        }
    }
    /**
     * Bug 018's fix: a thread that runs no event loop polls nothing. It releases
     * the context's lock once while it waits (the BH below needs it) and the
     * BH's kick wakes it; with the pre-fix home rule it would block-poll the
     * main context beside the main loop, which the poll refuses.
     */
    @Test
    void aThreadWithoutAnEventLoopWaitsForTheKickAndPollsNothing() throws Exception {
        for (boolean legacy : new boolean[] {false, true}) {
            LegacySwitches sw = new LegacySwitches();
            sw.set(LegacyBehavior.MAIN_CONTEXT_HOME_WITHOUT_BQL, legacy);
            try (MainLoop loop = new MainLoop(sw)) {
                AioContext main = loop.context();
                AtomicBoolean done = new AtomicBoolean();
                java.util.concurrent.CompletableFuture<Boolean> waited = new java.util.concurrent.CompletableFuture<>();
                Thread t = new Thread(() -> {
                    try (AioContextLock.Held h = main.acquire()) {
                        main.bhScheduleOneshot("set and kick", () -> {
                            done.set(true);
                            loop.aioWait().kick();
                        });
                        waited.complete(AioWait.pollWhile(main, () -> !done.get()));
                    } catch (Throwable e) {
                        waited.completeExceptionally(e);
                    }
                }, "worker");
                t.start();
                if (legacy) {
                    IllegalStateException e = assertThrows(IllegalStateException.class,
                            () -> loop.watchdog(Loops.OK).await("legacy wait", waited));
                    assertTrue(e.getMessage().contains("from thread 'worker': only its home thread 'main-loop' may block"),
                            e.getMessage());
                } else {
                    assertTrue(loop.watchdog(Loops.OK).await("delegated wait", waited));
                    assertTrue(done.get());
                }
                t.join();
            }
        }
    }
}
