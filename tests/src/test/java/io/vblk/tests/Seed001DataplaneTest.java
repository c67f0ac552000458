package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Seed001DataplaneStop;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Seed 001 at the dataplane: stopping must flush the pending guest notification. */
@Tag("concurrency")
class Seed001DataplaneTest {

    @Test
    void legacyStopLosesTheLastInterruptAndTheGuestWaitsForever() throws Exception {
        ScenarioResult r = new Seed001DataplaneStop().run(true, Duration.ofSeconds(2));
        assertTrue(r.hung(), r.verdict());
        assertTrue(r.detail().contains("1 signal(s) went to a released irqfd"), r.verdict());
        assertTrue(r.dump().contains("vcpu1 thread"), r.dump());
    }

    @Test
    void fixedStopDeliversIt() throws Exception {
        ScenarioResult r = new Seed001DataplaneStop().run(false, Duration.ofSeconds(10));
        assertFalse(r.hung(), r.verdict() + "\n" + r.dump());
        assertTrue(r.detail().contains("status 0"), r.verdict());
    }
}
