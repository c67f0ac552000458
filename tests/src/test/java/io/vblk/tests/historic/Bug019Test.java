package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug019EnableNotificationBarrier;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 019 both ways under the store-buffer model: without the barrier after
 * re-enabling kicks, io1 re-reads avail.idx with its avail_event store still
 * buffered, the guest does not kick for its second read and the watchdog
 * reports the hang; with it, the guest kicks and both reads complete.
 */
@Tag("concurrency")
class Bug019Test {
    private final Bug019EnableNotificationBarrier s = new Bug019EnableNotificationBarrier();

    @Test
    void registeredWithoutAConfirmedCommit() {
        assertEquals(Bug019EnableNotificationBarrier.class, Scenarios.byId("019-enable-notification-mb").getClass());
        assertEquals("", s.upstreamCommit());
    }

    @Test
    void legacyLosesTheKickAndTheWatchdogReportsTheHang() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed() && r.hung(), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertEquals("the guest did not kick for its second read: io1 re-read avail.idx with "
                + "[virtio-blk0 vq1 avail_event = 1] still in its store buffer", r.detail(), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0", "io1", "vcpu0", "vcpu1");
    }

    @Test
    void fixedKicksAndCompletes() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertEquals("io1's barrier published avail_event first (io1's store buffer at the seam: []); the guest "
                + "kicked for its second read; status 0", r.detail(), r.verdict());
    }
}
