package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug020ThreadPoolNestedPoll;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 020 (3c80ca158c) both ways: without the completion BH's self-schedule,
 * a completion polling for a job finished in the same batch hangs io0 (the
 * watchdog reports it); with it, the nested poll completes the batch.
 */
@Tag("concurrency")
class Bug020Test {
    private final Bug020ThreadPoolNestedPoll s = new Bug020ThreadPoolNestedPoll();

    @Test
    void registered() {
        assertEquals(Bug020ThreadPoolNestedPoll.class, Scenarios.byId("020-thread-pool-nested-poll").getClass());
        assertEquals("3c80ca158c", s.upstreamCommit());
    }

    @Test
    void legacyHangsInTheNestedPoll() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed() && r.hung(), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains("AioContext 'io0'") && r.dump().contains("AioWait.pollWhile"), r.dump());
        assertEquals("B's completion sat in the batch the outer BH run held; a later job's completion ran the BH and "
                + "unwound io0", r.detail(), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0");
    }

    @Test
    void fixedCompletesTheBatchFromTheNestedPoll() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertEquals("A's nested poll ran the rescheduled completion BH and B completed inside it", r.detail(),
                r.verdict());
    }
}
