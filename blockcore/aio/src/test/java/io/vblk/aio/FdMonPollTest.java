package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * What {@link AioPoll} does with its fd monitor, in both modes: epoll (vblk's
 * default) and ppoll ({@link FdMonPoll}, QEMU's default), here with a
 * threshold no test reaches so the context stays in poll mode throughout.
 */
@Tag("concurrency")
class FdMonPollTest {
    /** Never reached by these tests: the context stays in the mode it started in. */
    private static final int NO_UPGRADE = 10_000;

    private static IOThread iothread(MainLoop loop, FdMonMode mode, long pollMaxNs) {
        FdMonOptions o = mode == FdMonMode.POLL ? FdMonOptions.poll(NO_UPGRADE) : FdMonOptions.epoll();
        IOThread io = loop.newIOThread("io0", pollMaxNs, o);
        assertEquals(mode, io.context().fdMonMode());
        return io;
    }

    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void aHandlerRegisteredWhileTheLoopSleepsSeesEveryKick(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier kick = new EventNotifier()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            Loops.roundTrip(loop, ctx); // the loop goes back to sleep with only its own eventfd watched
            CountDownLatch kicked = new CountDownLatch(1000);
            // Registered from this thread while io0 sleeps: a ppoll asleep on the old set must be woken to see it.
            ctx.setFdHandler(new AioHandler.Builder("kick", kick.fd()).external(true).onRead(() -> {
                if (kick.testAndClear()) {
                    kicked.countDown();
                }
            }));
            Thread vcpu = new Thread(() -> {
                for (int i = 0; i < 1000; i++) {
                    long before = kicked.getCount();
                    kick.set();
                    while (kicked.getCount() == before) {
                        Thread.onSpinWait();
                    }
                }
            });
            vcpu.setDaemon(true);
            vcpu.start();
            Loops.await(loop, kicked, "1000 kicks");
            assertEquals(mode, ctx.fdMonMode());
            assertTrue(ctx.unwatchedHandlers().isEmpty(), ctx.describe());
        }
    }

    /**
     * A ppoll asleep on its old set would never see an fd registered after it
     * started: a registration by another thread wakes a poll-mode loop about
     * to sleep (QEMU's aio_set_fd_handler ends with aio_notify), and costs an
     * epoll-mode loop nothing, since its interest set already has the fd.
     */
    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void aRegistrationFromAnotherThreadWakesAPollModeSleeperOnly(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier kick = new EventNotifier()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            LoopHold hold = loop.watchdog(Loops.OK).await("arm", ctx.submit("arm", () -> LoopHold.atNextSleep(ctx)));
            hold.awaitHeld(loop.watchdog(Loops.OK), "io0 at its sleep point (notify_me raised)");
            CountDownLatch kicked = new CountDownLatch(1);
            long before = ctx.eventfdWrites();
            ctx.setFdHandler(new AioHandler.Builder("kick", kick.fd()).onRead(() -> {
                if (kick.testAndClear()) {
                    kicked.countDown();
                }
            }));
            long wakes = ctx.eventfdWrites() - before;
            hold.release();
            assertEquals(mode == FdMonMode.POLL ? 1 : 0, wakes);
            kick.set();
            Loops.await(loop, kicked, "the kick");
        }
    }

    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void aHandlerRemovedWhileTheLoopSleepsIsNotDispatched(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier fd = new EventNotifier();
             EventNotifier other = new EventNotifier()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            AtomicInteger removedRuns = new AtomicInteger();
            CountDownLatch otherRan = new CountDownLatch(1);
            AioHandler h = ctx.setFdHandler(new AioHandler.Builder("gone", fd.fd()).onRead(removedRuns::incrementAndGet));
            ctx.setFdHandler(new AioHandler.Builder("other", other.fd()).onRead(() -> {
                other.testAndClear();
                otherRan.countDown();
            }));
            Loops.roundTrip(loop, ctx);
            h.remove();
            fd.set(); // readable for good: dispatched at every poll if it were still watched
            other.set();
            Loops.await(loop, otherRan, "the other handler");
            Loops.roundTrip(loop, ctx);
            assertEquals(0, removedRuns.get());
            assertEquals(List.of("other"), ctx.handlers().stream().map(AioHandler::name).toList());
        }
    }

    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void externalHandlersAreMaskedWhileDisabledAndDispatchedAfterEnable(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier kick = new EventNotifier();
             EventNotifier internal = new EventNotifier()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            AtomicInteger kicks = new AtomicInteger();
            AtomicInteger internals = new AtomicInteger();
            loop.watchdog(Loops.OK).await("external handlers", ctx.run("external handlers", () -> {
                ctx.setFdHandler(new AioHandler.Builder("kick", kick.fd()).external(true).onRead(() -> {
                    kick.testAndClear();
                    kicks.incrementAndGet();
                }));
                ctx.setFdHandler(new AioHandler.Builder("internal", internal.fd()).onRead(() -> {
                    internal.testAndClear();
                    internals.incrementAndGet();
                }));
                ctx.disableExternal();
                kick.set();
                internal.set();
                assertTrue(ctx.poll(false), "internal handlers still run while external ones are disabled");
                assertEquals(1, internals.get());
                assertTrue(ctx.isExternalMasked(), "the poll masked the external fd");
                assertFalse(ctx.poll(false));
                assertEquals(0, kicks.get(), "held while disabled");
                ctx.enableExternal();
                assertTrue(ctx.poll(false));
                assertEquals(1, kicks.get(), "the held kick is dispatched once enabled, not lost");
                assertFalse(ctx.isExternalMasked());
            }));
        }
    }

    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void aForeignNonBlockingPollDispatchesAReadyHandler(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier fd = new EventNotifier()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            List<String> ranIn = Collections.synchronizedList(new ArrayList<>());
            ctx.setFdHandler(new AioHandler.Builder("fd", fd.fd()).onRead(() -> {
                if (fd.testAndClear()) {
                    ranIn.add(Thread.currentThread().getName());
                }
            }));
            try (AioContextLock.Held held = ctx.acquire()) {
                fd.set(); // io0 may wake, but cannot dispatch: this thread holds the lock
                assertTrue(ctx.poll(false), "a foreign poll sees the ready fd");
            }
            assertEquals(List.of(Thread.currentThread().getName()), ranIn);
        }
    }

    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void timersFireAtTheirNanosecondDeadlinesNeverEarly(FdMonMode mode) {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = iothread(loop, mode, 0);
            AioContext ctx = io.context();
            long[] delaysNs = {300_000, 1_500_000, 3_000_000};
            List<String> early = Collections.synchronizedList(new ArrayList<>());
            CountDownLatch done = new CountDownLatch(delaysNs.length);
            for (long d : delaysNs) {
                long deadline = System.nanoTime() + d;
                ctx.timerNew("t" + d, () -> {
                    if (System.nanoTime() < deadline) {
                        early.add("t" + d);
                    }
                    done.countDown();
                }).modNs(deadline); // armed from this thread: the sleeper is woken to see the deadline
            }
            Loops.await(loop, done, "timers");
            assertTrue(early.isEmpty(), "fired early: " + early);
            assertEquals(0, ctx.armedTimers());
        }
    }

    /**
     * Busy polling in either mode: the peer stops notifying while the loop
     * polls (ioPollBegin/End), so once the adaptive window has grown, work
     * is found by ioPoll alone and handled by ioPollReady.
     */
    @ParameterizedTest
    @EnumSource(FdMonMode.class)
    void busyPollingFindsWorkThePeerDidNotSignal(FdMonMode mode) {
        try (MainLoop loop = new MainLoop();
             EventNotifier fd = new EventNotifier()) {
            IOThread io = iothread(loop, mode, TimeUnit.MILLISECONDS.toNanos(50));
            AioContext ctx = io.context();
            AtomicBoolean work = new AtomicBoolean();
            AtomicBoolean notificationsOff = new AtomicBoolean();
            AtomicInteger byRead = new AtomicInteger();
            AtomicInteger byPoll = new AtomicInteger();
            AtomicInteger begins = new AtomicInteger();
            AtomicInteger ends = new AtomicInteger();
            ctx.setFdHandler(new AioHandler.Builder("vq", fd.fd()).external(true)
                    .onRead(() -> {
                        fd.testAndClear();
                        if (work.getAndSet(false)) {
                            byRead.incrementAndGet();
                        }
                    })
                    .poll(work::get, () -> {
                        if (work.getAndSet(false)) {
                            byPoll.incrementAndGet();
                        }
                    })
                    .pollBeginEnd(() -> {
                        begins.incrementAndGet();
                        notificationsOff.set(true);
                    }, () -> {
                        ends.incrementAndGet();
                        notificationsOff.set(false);
                    }));
            CountDownLatch polled = new CountDownLatch(1);
            AtomicBoolean stop = new AtomicBoolean();
            Thread peer = new Thread(() -> {
                while (byPoll.get() < 50 && !stop.get()) {
                    work.set(true);
                    if (!notificationsOff.get()) {
                        fd.set();
                    }
                    while (work.get() && !stop.get()) {
                        Thread.onSpinWait();
                    }
                }
                polled.countDown();
            });
            peer.setDaemon(true);
            peer.start();
            try {
                Loops.await(loop, polled, "50 requests found by busy polling");
            } finally {
                stop.set(true);
            }
            assertTrue(byPoll.get() >= 50, "found by polling: " + byPoll.get() + ", by the fd: " + byRead.get());
            assertTrue(begins.get() > 0, "ioPollBegin ran");
            Loops.roundTrip(loop, ctx);
            assertEquals(mode, ctx.fdMonMode());
        }
    }
}
