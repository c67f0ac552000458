package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug006AsyncBarriers;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 006 both ways under the store-buffer model: without aio_poll's explicit
 * barrier after raising notify_me, the main loop's aio_notify reads
 * notify_me == 0, io0 sleeps with a BH pending and the watchdog reports the
 * hang, with the stale read in its dump; with the barrier io0 is woken. On
 * the JVM's own ordering the legacy code completes as well: the hang is the
 * reordering the barrier forbids.
 */
@Tag("concurrency")
class Bug006Test {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    private final Bug006AsyncBarriers scenario = new Bug006AsyncBarriers();

    @Test
    void registeredWithItsUpstreamCommit() {
        assertEquals(scenario.id(), Scenarios.byId("006-async-barriers").id());
        assertEquals("5710a3e09f", scenario.upstreamCommit());
    }

    @Test
    void legacyLosesTheWakeUpAndTheWatchdogReportsTheHang() throws Exception {
        ScenarioResult r = scenario.run(true, HANG);
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0");
        assertTrue(r.failed() && r.hung(), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        String stale = "'main-loop' read io0.notify_me=0 in aio_notify while 'io0' still had [io0.notify_me += 2] "
                + "in its store buffer";
        assertTrue(r.dump().contains(stale), r.dump());
        assertTrue(r.dump().contains("pending BHs (1): [work for io0]"), r.dump());
        assertTrue(r.detail().startsWith("the wake-up was lost: " + stale), r.verdict());
        assertTrue(r.detail().endsWith("the BH ran in 'io0'"), r.verdict());
        assertTrue(r.verdict().startsWith(
                "006-async-barriers notify-me-without-explicit-barrier: legacy behaviour hangs"), r.verdict());
    }

    @Test
    void fixedCompletes() throws Exception {
        ScenarioResult r = scenario.run(false, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith(
                "006-async-barriers notify-me-without-explicit-barrier: fixed behaviour completes in"), r.verdict());
    }

    @Test
    void withoutTheModelTheLegacyCodeCompletesToo() throws Exception {
        ScenarioResult r = scenario.runWithoutModel(true, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
    }
}
