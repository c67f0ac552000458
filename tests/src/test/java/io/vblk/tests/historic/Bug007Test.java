package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug007AioWaitKick;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 007 both ways under the store-buffer model: without aio_wait_kick's
 * barriers the kick is lost and the watchdog reports the main loop's hang,
 * with the stale read of num_waiters in its dump; with them the wait
 * completes. On the JVM's own ordering the legacy code completes as well:
 * the hang is the reordering the barriers forbid, not a logic error.
 */
@Tag("concurrency")
class Bug007Test {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    private final Bug007AioWaitKick scenario = new Bug007AioWaitKick();

    @Test
    void registeredWithItsUpstreamCommit() {
        assertEquals(scenario.id(), Scenarios.byId("007-aio-wait-kick").id());
        assertEquals("7455ff1aa0", scenario.upstreamCommit());
    }

    /** The scenario stops its loops even after the hang: no event-loop thread of it is left alive. */
    static void assertNoLoopThreadLeft(String... names) {
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            for (String n : names) {
                assertFalse(t.isAlive() && t.getName().equals(n), "thread '" + n + "' is still running");
            }
        }
    }

    @Test
    void legacyLosesTheKickAndTheWatchdogReportsTheHang() throws Exception {
        ScenarioResult r = scenario.run(true, HANG);
        assertNoLoopThreadLeft("main-loop", "io0");
        assertTrue(r.failed() && r.hung(), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains(
                "'io0' read num_waiters=0 in aio_wait_kick while 'main-loop' still had [num_waiters += 1] in its store buffer"), r.dump());
        assertTrue(r.detail().startsWith("the kick was lost: 'io0' read num_waiters=0"), r.verdict());
        assertTrue(r.verdict().startsWith("007-aio-wait-kick aio-wait-kick-missing-barrier: legacy behaviour hangs"),
                r.verdict());
    }

    @Test
    void fixedCompletes() throws Exception {
        ScenarioResult r = scenario.run(false, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith("007-aio-wait-kick aio-wait-kick-missing-barrier: fixed behaviour completes in"),
                r.verdict());
    }

    @Test
    void withoutTheModelTheLegacyCodeCompletesToo() throws Exception {
        ScenarioResult r = scenario.runWithoutModel(true, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
    }
}
