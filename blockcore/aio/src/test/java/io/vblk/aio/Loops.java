package io.vblk.aio;

import java.time.Duration;
import java.util.concurrent.CountDownLatch;

/** Test helpers for driving event loops without sleeping. */
final class Loops {
    /** Generous bound for waits that must finish; a hang shows as a dump rather than a stall. */
    static final Duration OK = Duration.ofSeconds(30);
    /** Bound for waits a test expects to hang: the watchdog detects it. */
    static final Duration HANG = Duration.ofSeconds(2);

    private Loops() {
    }

    /** Waits until {@code ctx} has run a BH scheduled now, i.e. has finished at least one more poll. */
    static void roundTrip(MainLoop loop, AioContext ctx) {
        CountDownLatch done = new CountDownLatch(1);
        ctx.bhScheduleOneshot("round-trip", done::countDown);
        loop.watchdog(OK).await("round trip through " + ctx.name(), done);
    }

    /** Blocks the calling (test) thread until {@code latch} opens, failing with a dump after {@link #OK}. */
    static void await(MainLoop loop, CountDownLatch latch, String what) {
        loop.watchdog(OK).await(what, latch);
    }
}
