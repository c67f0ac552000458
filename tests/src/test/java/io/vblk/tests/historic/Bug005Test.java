package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug005IothreadStop;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 005 (2362a28ea1) both ways, in its era (the aio_notify protocol before
 * August 2020 in both runs): the flag-and-notify stop of an IOThread held
 * between its flag check and its poll is lost and the join hangs (the
 * watchdog reports it, io0 asleep in the dump); the stop BH ends the thread.
 * With the era switch off (vblk's protocol) even the legacy stop ends it.
 */
@Tag("concurrency")
class Bug005Test {
    private final Bug005IothreadStop s = new Bug005IothreadStop();

    @Test
    void registered() {
        assertEquals(Bug005IothreadStop.class, Scenarios.byId("005-iothread-stop").getClass());
        assertEquals("2362a28ea1", s.upstreamCommit());
    }

    @Test
    void legacyStopIsLostAndTheJoinHangs() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed() && r.hung(), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains("AioContext 'io0'") && r.dump().contains("phase=SLEEPING notify_me=2"), r.dump());
        assertTrue(r.detail().startsWith("lost wake-up: the stop flag was set"), r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop", "io0");
    }

    @Test
    void fixedStopBhEndsTheThread() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertNull(r.dump());
        assertEquals("io0 found the stop BH after raising notify_me and ended", r.detail(), r.verdict());
    }

    @Test
    void withoutTheEraSwitchVblksNotifyProtocolRescuesEvenTheLegacyStop() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(30), false);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
    }
}
