package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug010MirrorWaitInFlight;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 010 (ce8cabbd17) both ways: with the waiter free to pick any listed
 * op, one op waits on itself and another on it, and the mirror never reaches
 * READY with every slot free (the dump shows ops_in_flight); with the
 * is_in_flight check the same schedule ends and the target equals the source.
 */
@Tag("concurrency")
class Bug010Test {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    @Test
    void legacyWaiterPicksAnOpHoldingNoSlotAndTheMirrorHangs() throws Exception {
        ScenarioResult r = new Bug010MirrorWaitInFlight().run(true, HANG);
        assertTrue(r.failed(), r.verdict());
        assertTrue(r.hung(), r.verdict());
        assertEquals(ScenarioResult.HANGS, r.failure());
        assertNotNull(r.dump(), r.verdict());
        for (String needle : List.of("job 'mirror0' (mirror) status=running", "free_slots=1/1",
                "waits-on op1]")) {
            assertTrue(r.dump().contains(needle), "the dump shows '" + needle + "':\n" + r.dump());
        }
        assertTrue(r.verdict().contains("op1 waits on op1 (holding no slot)"), r.verdict());
        assertTrue(r.verdict().startsWith("010-mirror-wait-in-flight mirror-op-waits-on-itself: legacy behaviour hangs"),
                r.verdict());
    }

    @Test
    void fixedWaitersPickTheOpHoldingTheSlotAndTheMirrorIsReady() throws Exception {
        ScenarioResult r = new Bug010MirrorWaitInFlight().run(false, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().contains("op1 waits on op3"), r.verdict());
        assertFalse(r.verdict().contains("holding no slot"), r.verdict());
        assertTrue(r.verdict().startsWith("010-mirror-wait-in-flight mirror-op-waits-on-itself: fixed behaviour completes in"),
                r.verdict());
    }

    @Test
    void registeredWithItsUpstreamCommit() {
        assertSame(Bug010MirrorWaitInFlight.class, Scenarios.byId("010-mirror-wait-in-flight").getClass());
        assertEquals("ce8cabbd17", Scenarios.byId("010-mirror-wait-in-flight").upstreamCommit());
    }
}
