package io.vblk.aio;

import static org.junit.jupiter.api.Assertions.assertFalse;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Historic bug 005 (QEMU 2362a28ea1, iothread_stop race): the IOThread is
 * stopped while it stands between "check the stop flag" and "enter aio_poll"
 * (held there by a {@link LoopHold}). The stop is a one-shot BH in the
 * IOThread's own context, as the fix made it, and BHs are what a poll looks
 * at after announcing itself, so the thread still ends. The scenario
 * {@code 005-iothread-stop} (guestsim) replays the pre-fix stop in its era.
 */
@Tag("concurrency")
class IOThreadStopTest {

    @Test
    void anIOThreadStoppedBetweenItsFlagCheckAndItsPollStops() throws Exception {
        try (MainLoop loop = new MainLoop()) {
            IOThread io0 = loop.newIOThread("io0", 0);
            Loops.roundTrip(loop, io0.context());
            LoopHold h = LoopHold.atNextPoll(io0.context());
            io0.context().aioNotify(); // round the loop once: past its flag check, held before its poll
            h.awaitHeld(loop.watchdog(Loops.OK), "io0 held before its poll");
            io0.requestStop();
            h.release();
            io0.thread().join(Loops.OK.toMillis());
            assertFalse(io0.thread().isAlive(), io0.context().describe());
            io0.close();
        }
    }
}
