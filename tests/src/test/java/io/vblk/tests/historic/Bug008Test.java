package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.LegacyBehavior;
import io.vblk.guest.scenario.Bug008EpollUpgradeRace;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 008 (e62da98527) both ways: an IOThread in poll mode upgrades to epoll
 * while the main loop's dataplane start attaches queue 1's host notifier to
 * it. Without the handler list's lock across the upgrade the notifier goes to
 * the poll ops, the epoll never watches it and the guest's read on queue 1
 * never completes; with the fix the registration waits for the switch and
 * the read completes.
 */
@Tag("concurrency")
class Bug008Test {
    private final Bug008EpollUpgradeRace s = new Bug008EpollUpgradeRace();

    @Test
    void registered() {
        assertEquals(Bug008EpollUpgradeRace.class, Scenarios.byId("008-epoll-upgrade-race").getClass());
        assertEquals("e62da98527", s.upstreamCommit());
        assertTrue(s.explain().contains("Legacy (" + LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK + ")"),
                s.explain());
    }

    @Test
    void legacyLosesTheKickOfANotifierAttachedDuringTheUpgrade() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertTrue(r.hung(), r.verdict());
        assertTrue(r.verdict().startsWith("008-epoll-upgrade-race epoll-upgrade-race: legacy behaviour hangs "
                + "(detected after"), r.verdict());
        assertTrue(r.detail().contains("a kick io1's epoll never watched (virtio-blk0-vq1-kick"), r.verdict());
        assertTrue(r.detail().contains("was registered through the poll ops between io1's copy of its handlers and "
                + "its switch"), r.verdict());
        assertTrue(r.detail().endsWith("a dataplane restart, which attaches the notifier again, served it (status 0)"),
                r.verdict()); // nothing else kept the request: only the unwatched notifier
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains("NOT WATCHED by the epoll fd monitor (their events never arrive): "
                + "[virtio-blk0-vq1-kick"), r.dump());
        assertTrue(r.dump().contains("fd monitor: epoll (upgraded from poll at 2 fds)"), r.dump());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0", "io1", "vcpu0", "vcpu1");
    }

    @Test
    void fixedRegistersTheNotifierThroughEpollAndTheReadCompletes() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertNull(r.dump(), r.verdict());
        assertTrue(r.verdict().startsWith("008-epoll-upgrade-race epoll-upgrade-race: fixed behaviour completes in"),
                r.verdict());
        assertTrue(r.detail().contains("io1 upgraded to epoll at 2 fds while the main loop attached "
                + "virtio-blk0-vq1-kick, which waited for the handler list's lock and was registered through the "
                + "epoll ops"), r.verdict());
        assertTrue(r.detail().contains("the guest's read on queue 1 completed (status 0)"), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0", "io1", "vcpu0", "vcpu1");
    }
}
