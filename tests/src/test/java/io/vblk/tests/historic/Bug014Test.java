package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug014HostNotifiersStop;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 014 (75dcb4d790) both ways: with the pre-fix stop order the stop's
 * drains re-attach the queues' host-notifier handlers in io0, and they are
 * still registered after the stop; with the fix no handler remains.
 */
@Tag("concurrency")
class Bug014Test {
    private final Bug014HostNotifiersStop s = new Bug014HostNotifiersStop();

    @Test
    void registered() {
        assertEquals(Bug014HostNotifiersStop.class, Scenarios.byId("014-host-notifiers-stop").getClass());
        assertEquals("75dcb4d790", s.upstreamCommit());
    }

    @Test
    void legacyLeavesHandlersOfCleanedUpNotifiers() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("leaves host-notifier handlers after stop", r.failure(), r.verdict());
        assertTrue(r.detail().contains("virtio-blk0-vq0-kick in io0"), r.verdict());
        assertTrue(r.detail().contains("virtio-blk0-vq1-kick in io0"), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains("virtio-blk0-vq0-kick"), r.dump());
        assertTrue(r.verdict().startsWith("014-host-notifiers-stop host-notifiers-during-stop: legacy behaviour "
                + "leaves host-notifier handlers after stop (detected after"), r.verdict());
    }

    @Test
    void fixedLeavesNoHandler() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith("014-host-notifiers-stop host-notifiers-during-stop: fixed behaviour "
                + "completes in"), r.verdict());
    }
}
