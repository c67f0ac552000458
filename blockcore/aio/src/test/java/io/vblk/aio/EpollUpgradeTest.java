package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The upgrade of a context from ppoll to epoll (QEMU's
 * {@code fdmon_epoll_try_upgrade}) and bug 008's race with a registration
 * from another thread (e62da98527).
 */
@Tag("concurrency")
class EpollUpgradeTest {
    /**
     * Returns once {@code ctx}'s home thread has waited in its fd monitor
     * (where it tries the upgrade) after everything this thread did before:
     * the first BH may run in the iteration whose wait began earlier, the
     * second runs in the next one.
     */
    private static void afterAWait(MainLoop loop, AioContext ctx) {
        Loops.roundTrip(loop, ctx);
        Loops.roundTrip(loop, ctx);
    }

    @Test
    void aContextUpgradesAtItsThresholdNotBefore() {
        try (MainLoop loop = new MainLoop();
             EventNotifier a = new EventNotifier();
             EventNotifier b = new EventNotifier();
             EventNotifier c = new EventNotifier()) {
            AioContext ctx = loop.newIOThread("io0", 0, FdMonOptions.poll(4)).context();
            ctx.setFdHandler(new AioHandler.Builder("a", a.fd()).onRead(a::testAndClear));
            ctx.setFdHandler(new AioHandler.Builder("b", b.fd()).onRead(b::testAndClear));
            afterAWait(loop, ctx);
            assertEquals(FdMonMode.POLL, ctx.fdMonMode(), "3 fds (its eventfd, a, b) are below the threshold");
            assertEquals(0, ctx.fdMonUpgradedAt());
            CountDownLatch cRan = new CountDownLatch(1);
            ctx.setFdHandler(new AioHandler.Builder("c", c.fd()).onRead(() -> {
                c.testAndClear();
                cRan.countDown();
            }));
            afterAWait(loop, ctx);
            assertEquals(FdMonMode.EPOLL, ctx.fdMonMode(), ctx.describe());
            assertEquals(4, ctx.fdMonUpgradedAt());
            assertTrue(ctx.describe().contains("fd monitor: epoll (upgraded from poll at 4 fds)"), ctx.describe());
            assertTrue(ctx.unwatchedHandlers().isEmpty(), ctx.describe());
            c.set();
            Loops.await(loop, cRan, "c through epoll");
            AioContext plain = loop.newIOThread("io1", 0, FdMonOptions.epoll()).context();
            assertEquals(FdMonMode.EPOLL, plain.fdMonMode());
            assertEquals(0, plain.fdMonUpgradedAt(), "epoll from the start: no upgrade");
        }
    }

    /**
     * Handlers registered, signalled and removed by another thread while the
     * home thread polls (and a peer keeps it busy with kicks), across the
     * upgrade: every event of a live handler arrives, once more after the
     * upgrade, and a removed handler never runs again.
     */
    @Test
    void anUpgradeUnderLoadLosesNoEvent() throws Exception {
        for (int round = 0; round < 4; round++) {
            upgradeUnderLoad(8 + round * 4, 48);
        }
    }

    private static void upgradeUnderLoad(int threshold, int n) throws Exception {
        List<EventNotifier> fds = new ArrayList<>();
        try (MainLoop loop = new MainLoop();
             EventNotifier busy = new EventNotifier()) {
            AioContext ctx = loop.newIOThread("io0", 0, FdMonOptions.poll(threshold)).context();
            AtomicInteger busyRuns = new AtomicInteger();
            ctx.setFdHandler(new AioHandler.Builder("busy", busy.fd()).onRead(() -> {
                if (busy.testAndClear()) {
                    busyRuns.incrementAndGet();
                }
            }));
            AtomicBoolean stop = new AtomicBoolean();
            Thread peer = new Thread(() -> {
                while (!stop.get()) {
                    int before = busyRuns.get();
                    busy.set();
                    while (busyRuns.get() == before && !stop.get()) {
                        Thread.onSpinWait();
                    }
                }
            }, "peer");
            peer.setDaemon(true);
            peer.start();
            AtomicInteger[] runs = new AtomicInteger[n];
            CountDownLatch[] firstRun = new CountDownLatch[n];
            CountDownLatch[] twoRuns = new CountDownLatch[n];
            AioHandler[] hs = new AioHandler[n];
            boolean[] removed = new boolean[n];
            try {
                for (int i = 0; i < n; i++) {
                    EventNotifier e = new EventNotifier();
                    fds.add(e);
                    int k = i;
                    runs[k] = new AtomicInteger();
                    firstRun[k] = new CountDownLatch(1);
                    twoRuns[k] = new CountDownLatch(2);
                    hs[k] = ctx.setFdHandler(new AioHandler.Builder("h" + k, e.fd()).onRead(() -> {
                        if (e.testAndClear()) {
                            runs[k].incrementAndGet();
                            firstRun[k].countDown();
                            twoRuns[k].countDown();
                        }
                    }));
                    e.set();
                    if (k % 3 == 2) {
                        Loops.await(loop, firstRun[k - 2], "h" + (k - 2) + "'s event");
                        hs[k - 2].remove();
                        removed[k - 2] = true;
                        fds.get(k - 2).set(); // readable for good: must not run once removed
                    }
                }
                for (int i = 0; i < n; i++) {
                    Loops.await(loop, firstRun[i], "h" + i + "'s event");
                }
            } finally {
                stop.set(true);
                peer.join(TimeUnit.SECONDS.toMillis(30));
            }
            afterAWait(loop, ctx);
            assertEquals(FdMonMode.EPOLL, ctx.fdMonMode(), ctx.describe());
            assertTrue(ctx.fdMonUpgradedAt() >= threshold, ctx.describe());
            assertTrue(ctx.unwatchedHandlers().isEmpty(), ctx.describe());
            for (int i = 0; i < n; i++) {
                if (!removed[i]) {
                    fds.get(i).set();
                }
            }
            for (int i = 0; i < n; i++) {
                if (!removed[i]) {
                    Loops.await(loop, twoRuns[i], "h" + i + "'s second event, after the upgrade");
                }
            }
            Loops.roundTrip(loop, ctx);
            for (int i = 0; i < n; i++) {
                assertEquals(removed[i] ? 1 : 2, runs[i].get(), "h" + i + (removed[i] ? " (removed)" : ""));
            }
        } finally {
            for (EventNotifier e : fds) {
                e.close();
            }
        }
    }

    /**
     * Bug 008 staged with the seams, both ways: io0 is between copying its
     * handlers into a fresh epoll and switching to it when this thread
     * registers a handler. Fixed, the registration waits for the list lock and
     * goes through epoll; legacy, it goes through the poll table and the epoll
     * never watches it.
     */
    @ParameterizedTest(name = "legacy={0}")
    @ValueSource(booleans = {false, true})
    void aRegistrationDuringTheUpgradeIsWatchedOnlyWithTheListLock(boolean legacy) {
        LegacySwitches sw = legacy ? new LegacySwitches(Set.of(LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK))
                : new LegacySwitches();
        try (MainLoop loop = new MainLoop("main-loop", sw);
             EventNotifier a = new EventNotifier();
             EventNotifier b = new EventNotifier()) {
            AioContext ctx = loop.newIOThread("io0", 0, FdMonOptions.poll(2)).context();
            Loops.roundTrip(loop, ctx);
            CountDownLatch atWindow = new CountDownLatch(1);
            CountDownLatch bOutcome = new CountDownLatch(1);
            AtomicBoolean bWaitedForLock = new AtomicBoolean();
            List<FdMonMode> bThrough = new ArrayList<>();
            AtomicBoolean underContextLock = new AtomicBoolean();
            ctx.setFdMonSeam(new FdMonSeam() {
                @Override
                public void listLockBusy(String name) {
                    if (name.equals("b")) {
                        bWaitedForLock.set(true);
                        bOutcome.countDown();
                    }
                }

                @Override
                public void registered(String name, FdMonMode mode) {
                    if (name.equals("b")) {
                        bThrough.add(mode);
                        bOutcome.countDown();
                    }
                }

                @Override
                public void upgradeWindow() {
                    atWindow.countDown();
                    if (ctx.lock().owner() == Thread.currentThread()) {
                        underContextLock.set(true); // no registration can race this one
                        return;
                    }
                    try {
                        bOutcome.await(30, TimeUnit.SECONDS);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                }
            });
            // io0 held at its sleep point (context lock released, about to wait), as a registration from
            // another thread finds it; a registration that wakes a running loop would let it upgrade in a
            // non-blocking wait under its context lock instead, where no registration can race.
            LoopHold hold = loop.watchdog(Loops.OK).await("arm", ctx.submit("arm", () -> LoopHold.atNextSleep(ctx)));
            hold.awaitHeld(loop.watchdog(Loops.OK), "io0 at its sleep point");
            ctx.setFdHandler(new AioHandler.Builder("a", a.fd()).onRead(a::testAndClear)); // 2 fds: upgrade
            hold.release();
            Loops.await(loop, atWindow, "io0 in its upgrade window");
            assertFalse(underContextLock.get(), "staged: io0 upgrades in its unlocked wait");
            AtomicInteger bRuns = new AtomicInteger();
            CountDownLatch bRan = new CountDownLatch(1);
            ctx.setFdHandler(new AioHandler.Builder("b", b.fd()).onRead(() -> {
                if (b.testAndClear()) {
                    bRuns.incrementAndGet();
                    bRan.countDown();
                }
            }));
            ctx.setFdMonSeam(null);
            b.set();
            Loops.roundTrip(loop, ctx);
            assertEquals(FdMonMode.EPOLL, ctx.fdMonMode());
            if (legacy) {
                assertEquals(List.of(FdMonMode.POLL), bThrough, "registered through the old ops");
                assertFalse(bWaitedForLock.get());
                assertEquals(List.of("b"), ctx.unwatchedHandlers().stream().map(AioHandler::name).toList());
                assertTrue(ctx.describe().contains("NOT WATCHED by the epoll fd monitor"), ctx.describe());
                Loops.roundTrip(loop, ctx);
                assertEquals(0, bRuns.get(), "b's fd is readable, but the epoll does not watch it");
            } else {
                assertEquals(List.of(FdMonMode.EPOLL), bThrough, "registered through epoll, after the switch");
                assertTrue(bWaitedForLock.get(), "the registration waited for the upgrade's list lock");
                Loops.await(loop, bRan, "b's event");
                assertTrue(ctx.unwatchedHandlers().isEmpty(), ctx.describe());
            }
        }
    }

    @Test
    void optionsComeFromTheSystemProperties() {
        String mode = System.getProperty(FdMonOptions.MODE_PROPERTY);
        String threshold = System.getProperty(FdMonOptions.THRESHOLD_PROPERTY);
        try {
            System.clearProperty(FdMonOptions.MODE_PROPERTY);
            System.clearProperty(FdMonOptions.THRESHOLD_PROPERTY);
            assertEquals(FdMonOptions.epoll(), FdMonOptions.fromSystemProperties());
            System.setProperty(FdMonOptions.MODE_PROPERTY, "poll");
            assertEquals(FdMonOptions.poll(64), FdMonOptions.fromSystemProperties());
            System.setProperty(FdMonOptions.THRESHOLD_PROPERTY, "3");
            assertEquals(FdMonOptions.poll(3), FdMonOptions.fromSystemProperties());
            try (MainLoop loop = new MainLoop()) {
                assertEquals(FdMonMode.POLL, loop.context().fdMonMode());
                assertEquals(FdMonOptions.poll(3), loop.newIOThread("io0", 0).context().fdMonOptions());
                Loops.roundTrip(loop, loop.context());
            }
            System.setProperty(FdMonOptions.MODE_PROPERTY, "select");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, FdMonOptions::fromSystemProperties);
            assertTrue(e.getMessage().contains("vblk.aio.fdmon=select"), e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> FdMonOptions.poll(0));
        } finally {
            restore(FdMonOptions.MODE_PROPERTY, mode);
            restore(FdMonOptions.THRESHOLD_PROPERTY, threshold);
        }
    }

    private static void restore(String key, String value) {
        if (value == null) {
            System.clearProperty(key);
        } else {
            System.setProperty(key, value);
        }
    }
}
