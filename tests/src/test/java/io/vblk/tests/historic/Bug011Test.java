package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug011JobCleanAcquire;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 011 (eca0f3524a) both ways: with the extra acquire in the job's clean
 * step the main loop and io0 deadlock on io0's lock, and the dump shows the
 * main loop holding it once more while it waits in the filter drop's drain;
 * without it the same stream job concludes.
 */
@Tag("concurrency")
class Bug011Test {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    @Test
    void legacyCleanAcquiresAgainAndTheCompletionHangs() throws Exception {
        Bug011JobCleanAcquire s = new Bug011JobCleanAcquire();
        ScenarioResult r = s.run(true, HANG);
        assertTrue(r.failed(), r.verdict());
        assertTrue(r.hung(), r.verdict());
        assertEquals(ScenarioResult.HANGS, r.failure());
        assertNotNull(r.dump(), r.verdict());
        for (String needle : List.of("lock: held by 'main-loop' depth 1 (threads waiting)", "Graph.removeFilter",
                "StreamJob.clean", "[drain-begin:top, ")) {
            assertTrue(r.dump().contains(needle), "the dump shows '" + needle + "':\n" + r.dump());
        }
        assertTrue(r.verdict().startsWith("011-job-clean-acquire job-clean-double-acquire: legacy behaviour hangs"),
                r.verdict());
    }

    @Test
    void fixedCleanDropsTheFilterAndTheJobConcludes() throws Exception {
        ScenarioResult r = new Bug011JobCleanAcquire().run(false, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith("011-job-clean-acquire job-clean-double-acquire: fixed behaviour completes in"),
                r.verdict());
    }

    @Test
    void registeredWithItsUpstreamCommit() {
        assertSame(Bug011JobCleanAcquire.class, Scenarios.byId("011-job-clean-acquire").getClass());
        assertEquals("eca0f3524a", Scenarios.byId("011-job-clean-acquire").upstreamCommit());
    }
}
