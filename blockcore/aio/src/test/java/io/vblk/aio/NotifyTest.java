package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CountDownLatch;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The notify_me protocol and seed 004 (notify accept only in a blocking poll). */
@Tag("concurrency")
class NotifyTest {

    /**
     * Seed 004 replayed step by step. The IOThread, drained (external handlers
     * disabled), has masked the guest's kick fd and announced itself in notify_me
     * on its way to sleep. The main thread ends the drained section, which
     * notifies the IOThread so it re-arms the kick fd, then runs a non-blocking
     * poll of that context. Pre-fix, that poll accepts the notification and eats
     * the eventfd: the IOThread sleeps on with the kick fd masked, and the
     * guest's kick is never seen. Fixed, the IOThread wakes, re-arms, and
     * dispatches the kick.
     */
    @ParameterizedTest(name = "legacy={0}")
    @ValueSource(booleans = {false, true})
    void seed004NonBlockingForeignPollMustNotStealTheWakeUp(boolean legacy) {
        LegacySwitches sw = new LegacySwitches();
        sw.set(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL, legacy);
        try (MainLoop loop = new MainLoop(sw);
             EventNotifier kick = new EventNotifier()) {
            IOThread io = loop.newIOThread("io0", 0);
            AioContext ctx = io.context();
            CountDownLatch kicked = new CountDownLatch(1);
            ctx.setFdHandler(new AioHandler.Builder("guest-kick", kick.fd()).external(true).onRead(() -> {
                kick.testAndClear();
                kicked.countDown();
            }));
            LoopHold[] hold = new LoopHold[1];
            CountDownLatch armed = new CountDownLatch(1);
            // drained begin, as seen by the IOThread: its next poll masks the kick fd, then it goes to sleep
            ctx.bhScheduleOneshot("drained-begin", () -> {
                ctx.disableExternal();
                hold[0] = LoopHold.atNextSleep(ctx);
                armed.countDown();
            });
            Loops.await(loop, armed, "drained begin in the IOThread");
            hold[0].awaitHeld(loop.watchdog(Loops.OK), "IOThread reaching its sleep point");
            assertEquals(2, ctx.notifyMe(), "a blocking poller announces itself before sleeping");
            assertTrue(ctx.handlers().toString().contains("masked"), ctx.handlers().toString());

            loop.watchdog(Loops.OK).run("drained end + non-blocking poll from the main thread", () -> {
                ctx.enableExternal(); // aio_enable_external -> aio_notify: writes the eventfd (notify_me == 2)
                ctx.poll(false);      // e.g. bdrv_set_aio_context quiescing the old context
            });
            hold[0].release();
            kick.set(); // the guest's kick

            if (legacy) {
                HangDetectedException hang = assertThrows(HangDetectedException.class,
                        () -> loop.watchdog(Loops.HANG).await("guest kick dispatched", kicked));
                String dump = hang.dump();
                assertTrue(dump.contains("AioContext 'io0'"), dump);
                assertTrue(dump.contains("phase=SLEEPING notify_me=2 notified=false external_disable_cnt=0"), dump);
                assertTrue(dump.contains("masked"), "the kick fd is still masked: " + dump);
            } else {
                Loops.await(loop, kicked, "guest kick dispatched");
            }
            assertTrue(loop.failures().isEmpty(), loop.failures().toString());
        }
    }

    @Test
    void notifyWritesTheEventfdOnlyWhenABlockingPollerAnnouncedItself() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0", 0);
            AioContext ctx = io.context();

            // The home thread busy in a callback: notify_me is 0, so notify only marks the context.
            CountDownLatch inCallback = new CountDownLatch(1);
            CountDownLatch leave = new CountDownLatch(1);
            ctx.bhScheduleOneshot("busy", () -> {
                inCallback.countDown();
                Loops.await(loop, leave, "test releasing the callback");
            });
            Loops.await(loop, inCallback, "IOThread in a callback");
            assertEquals(0, ctx.notifyMe());
            long writes = ctx.eventfdWrites();
            ctx.aioNotify();
            assertTrue(ctx.isNotified());
            assertEquals(writes, ctx.eventfdWrites(), "no syscall when nobody sleeps");
            leave.countDown();

            // The home thread at its sleep point: notify_me is 2, so notify writes the eventfd.
            // armed from the home thread, so the held sleep is a later poll than the one that accepted
            LoopHold hold = loop.watchdog(Loops.OK).await("arm", ctx.submit("arm", () -> LoopHold.atNextSleep(ctx)));
            hold.awaitHeld(loop.watchdog(Loops.OK), "IOThread at its sleep point");
            assertEquals(2, ctx.notifyMe());
            assertFalse(ctx.isNotified(), "the previous notification was accepted");
            writes = ctx.eventfdWrites();
            ctx.aioNotify();
            assertEquals(writes + 1, ctx.eventfdWrites());
            hold.release();
            Loops.roundTrip(loop, ctx); // the sleeper woke: the notification was not lost
        }
    }

    @Test
    void blockingPollFromAForeignThreadIsRefused() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> io.context().poll(true));
            assertTrue(e.getMessage().contains("only its home thread 'io0' may block"), e.getMessage());
        }
    }

    @Test
    void theContextsOwnNotificationIsNotProgress() {
        try (MainLoop loop = new MainLoop()) {
            IOThread io = loop.newIOThread("io0");
            AioContext ctx = io.context();
            loop.watchdog(Loops.OK).await("progress", ctx.run("progress", () -> {
                assertFalse(ctx.poll(false));
                ctx.aioNotify();
                assertFalse(ctx.poll(true), "a poll woken only by aio_notify made no progress");
                ctx.bhScheduleOneshot(() -> { });
                assertTrue(ctx.poll(false));
            }));
        }
    }
}
