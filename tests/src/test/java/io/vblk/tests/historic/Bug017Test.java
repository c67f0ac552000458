package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug017UnrealizeDrain;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 017 (7bfde688fb) both ways: without the drain in unrealize, the read
 * the guest left in the backend completes on a torn-down device and the
 * guest never hears of it; with it, the read completes and is signalled
 * before the device goes.
 */
@Tag("concurrency")
class Bug017Test {
    private final Bug017UnrealizeDrain s = new Bug017UnrealizeDrain();

    @Test
    void registered() {
        assertEquals(Bug017UnrealizeDrain.class, Scenarios.byId("017-unrealize-drain").getClass());
        assertEquals("7bfde688fb", s.upstreamCommit());
    }

    @Test
    void legacyCompletesARequestOnAnUnpluggedDevice() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("completes a request on an unplugged device", r.failure(), r.verdict());
        assertEquals("1 completion(s) reached virtio-blk0 after unrealize; the guest waits for its interrupt",
                r.detail(), r.verdict());
        assertTrue(r.verdict().startsWith("017-unrealize-drain drain-before-unrealize: legacy behaviour completes a "
                + "request on an unplugged device (detected after"), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "vcpu0");
    }

    @Test
    void fixedDrainsBeforeTearingDown() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertEquals("unrealize drained the read first: guest status 0, then the device was torn down", r.detail(),
                r.verdict());
        assertTrue(r.verdict().startsWith("017-unrealize-drain drain-before-unrealize: fixed behaviour completes in"),
                r.verdict());
    }
}
