package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug016IrqfdByThread;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 016 (bfa36802d1) both ways: with the notification path chosen by the
 * ioeventfd state, io1 notifies the guest through the main-loop path inside
 * the dataplane stop's drain; chosen by the thread, it takes the irqfd.
 */
@Tag("concurrency")
class Bug016Test {
    private final Bug016IrqfdByThread s = new Bug016IrqfdByThread();

    @Test
    void registered() {
        assertEquals(Bug016IrqfdByThread.class, Scenarios.byId("016-irqfd-by-thread").getClass());
        assertEquals("bfa36802d1", s.upstreamCommit());
    }

    @Test
    void legacyInjectsAnInterruptOffTheMainThread() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("injects an interrupt off the main thread", r.failure(), r.verdict());
        assertTrue(r.detail().contains("io1 via the main-loop path"), r.verdict());
        assertTrue(r.verdict().startsWith("016-irqfd-by-thread irqfd-choice-by-thread: legacy behaviour injects an "
                + "interrupt off the main thread (detected after"), r.verdict());
    }

    @Test
    void fixedNotifiesThroughTheIrqfd() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.detail().contains("io1 via irqfd"), r.verdict());
        assertTrue(r.verdict().startsWith("016-irqfd-by-thread irqfd-choice-by-thread: fixed behaviour completes in"),
                r.verdict());
    }
}
