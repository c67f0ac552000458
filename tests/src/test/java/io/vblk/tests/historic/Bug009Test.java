package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug009BlkInFlightWhileDrained;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 009 (7f16476fab) both ways: a guest read that reaches the backend
 * during a snapshot's drain parks there; kept in flight (legacy) the drain
 * waits for it forever and the dump shows the parked request counted, without
 * the reference (fixed) the snapshot completes and the read is answered.
 */
@Tag("concurrency")
class Bug009Test {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    @Test
    void legacyParkedRequestKeepsItsReferenceAndTheDrainHangs() throws Exception {
        ScenarioResult r = new Bug009BlkInFlightWhileDrained().run(true, HANG);
        assertTrue(r.failed(), r.verdict());
        assertTrue(r.hung(), r.verdict());
        assertEquals(ScenarioResult.HANGS, r.failure());
        assertNotNull(r.dump(), r.verdict());
        for (String needle : List.of("backend 'blk0' -> 'disk0' in_flight=1 quiesce=1 queued=1",
                "ExternalSnapshot.prepare", "NodeDrain.begin", "legacy switches: [BLK_IN_FLIGHT_WHILE_QUEUED]")) {
            assertTrue(r.dump().contains(needle), "the dump shows '" + needle + "':\n" + r.dump());
        }
        assertTrue(r.verdict().startsWith(
                "009-blk-in-flight-drained blk-in-flight-while-drained: legacy behaviour hangs"), r.verdict());
    }

    @Test
    void fixedParkedRequestDoesNotCountAndTheSnapshotCompletes() throws Exception {
        ScenarioResult r = new Bug009BlkInFlightWhileDrained().run(false, OK);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith(
                "009-blk-in-flight-drained blk-in-flight-while-drained: fixed behaviour completes in"), r.verdict());
    }

    @Test
    void registeredWithItsUpstreamCommit() {
        assertSame(Bug009BlkInFlightWhileDrained.class, Scenarios.byId("009-blk-in-flight-drained").getClass());
        assertEquals("7f16476fab", Scenarios.byId("009-blk-in-flight-drained").upstreamCommit());
    }
}
