package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug013DrainWholeRequests;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 013 (8f5e9a8ee1) both ways: a drain that waits for the block layer only
 * lets the dataplane stop move queue 1 while its completion is still handed
 * to io1 (push + notify pending); waiting for whole requests, the stop moves
 * it empty.
 */
@Tag("concurrency")
class Bug013Test {
    private final Bug013DrainWholeRequests s = new Bug013DrainWholeRequests();

    @Test
    void registered() {
        assertEquals(Bug013DrainWholeRequests.class, Scenarios.byId("013-drain-whole-requests").getClass());
        assertEquals("8f5e9a8ee1", s.upstreamCommit());
    }

    @Test
    void legacyEndsTheDrainWithACompletionInTransit() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("ends a drain with a completion in transit", r.failure(), r.verdict());
        assertTrue(r.detail().contains("hand-off queue 'virtio-blk0-vq1-complete' deleted with 1 request(s) in it"),
                r.verdict());
        assertTrue(r.detail().contains("the read then completed in io1 (status 0)"), r.verdict());
        assertTrue(r.verdict().startsWith("013-drain-whole-requests drain-waits-for-whole-requests: legacy behaviour "
                + "ends a drain with a completion in transit (detected after"), r.verdict());
    }

    @Test
    void fixedDrainWaitsForPushAndNotify() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.detail().contains("guest status 0"), r.verdict());
        assertTrue(r.verdict().startsWith("013-drain-whole-requests drain-waits-for-whole-requests: fixed behaviour "
                + "completes in"), r.verdict());
    }
}
