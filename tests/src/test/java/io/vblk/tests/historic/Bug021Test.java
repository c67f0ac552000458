package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug021DrainBeforeRemoveBs;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 021 (4295c5fc61) both ways: without the drain in blk_remove_bs, the
 * read completes after the medium was ejected (from the node's closing
 * drain); with it, the read completes before the medium goes.
 */
@Tag("concurrency")
class Bug021Test {
    private final Bug021DrainBeforeRemoveBs s = new Bug021DrainBeforeRemoveBs();

    @Test
    void registered() {
        assertEquals(Bug021DrainBeforeRemoveBs.class, Scenarios.byId("021-drain-before-remove-bs").getClass());
        assertEquals("4295c5fc61", s.upstreamCommit());
    }

    @Test
    void legacyCompletesTheReadAfterTheMediumWasEjected() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertEquals("completes a request after its medium was ejected", r.failure(), r.verdict());
        assertEquals("1 completion(s) of drive0 ran after blk_remove_bs dropped its node (read ret 0)", r.detail(),
                r.verdict());
        Bug007Test.assertNoLoopThreadLeft("main-loop");
    }

    @Test
    void fixedDrainsBeforeDroppingTheMedium() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertEquals("blk_remove_bs drained the read first (ret 0), then dropped the medium", r.detail(), r.verdict());
    }
}
