package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug018DelegateMainPoll;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 018 (3c18a92dc4) both ways: with any thread that runs no event loop
 * counted as the main context's home, the migration thread's synchronous
 * write polls the main context beside the main loop (refused, named); with
 * only the event-loop thread home, it waits for the main loop's kick.
 */
@Tag("concurrency")
class Bug018Test {
    private final Bug018DelegateMainPoll s = new Bug018DelegateMainPoll();

    @Test
    void registered() {
        assertEquals(Bug018DelegateMainPoll.class, Scenarios.byId("018-delegate-main-poll").getClass());
        assertEquals("3c18a92dc4", s.upstreamCommit());
    }

    @Test
    void legacyPollsTheMainContextFromTheMigrationThread() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("polls the main context from a second thread", r.failure(), r.verdict());
        assertEquals("blocking poll of AioContext 'main-loop' from thread 'live_migration': only its home thread "
                + "'main-loop' may block in it", r.detail(), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "live_migration");
    }

    @Test
    void fixedDelegatesToTheMainLoop() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith("018-delegate-main-poll main-context-home-needs-bql: fixed behaviour "
                + "completes in"), r.verdict());
        assertTrue(r.detail().contains("polled nothing"), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "live_migration");
    }
}
