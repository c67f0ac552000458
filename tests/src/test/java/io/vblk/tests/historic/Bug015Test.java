package io.vblk.tests.historic;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Bug015StartKickDrained;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Bug 015 (d3f6f294ae) both ways, in the world of January 2024 (the era
 * switch ATTACH_WITHOUT_QUEUE_KICK on): a dataplane started inside
 * block_resize's drained section skips its self-kick with the legacy start,
 * and the read the guest queued before DRIVER_OK is never served; with the
 * fix it completes. With the era switch off (vblk's default, QEMU since
 * 5bdbaebcce) the legacy start completes too: the later fix masks 015.
 */
@Tag("concurrency")
class Bug015Test {
    private final Bug015StartKickDrained s = new Bug015StartKickDrained();

    @Test
    void registered() {
        assertEquals(Bug015StartKickDrained.class, Scenarios.byId("015-start-kick-drained").getClass());
        assertEquals("d3f6f294ae", s.upstreamCommit());
        assertTrue(s.explain().contains("START_KICK_ONLY_WHEN_NOT_DRAINED"), s.explain());
        assertTrue(s.explain().contains("ATTACH_WITHOUT_QUEUE_KICK"), s.explain());
    }

    @Test
    void legacyStartLosesTheWakeUp() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(2));
        assertTrue(r.failed(), r.verdict());
        assertTrue(r.hung(), r.verdict());
        assertTrue(r.detail().startsWith("lost wake-up: the read sits in vq0's vring (ring has work: true"), r.verdict());
        assertTrue(r.detail().endsWith("; signalled afterwards, io0 served it"), r.verdict());
        assertNotNull(r.dump(), r.verdict());
        assertTrue(r.dump().contains("AioContext 'io0'"), r.dump());
        assertTrue(r.dump().contains("handlers: [virtio-blk0-vq0-kick("), "io0 sleeps with vq0's notifier attached:\n"
                + r.dump());
        assertTrue(r.verdict().startsWith("015-start-kick-drained start-kick-while-drained: legacy behaviour hangs "
                + "(detected after"), r.verdict());
    }

    @Test
    void fixedStartServesTheRead() throws Exception {
        ScenarioResult r = s.run(false, Duration.ofSeconds(30));
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertNull(r.dump());
        assertTrue(r.detail().contains("(status 0)"), r.verdict());
        assertTrue(r.verdict().startsWith("015-start-kick-drained start-kick-while-drained: fixed behaviour "
                + "completes in"), r.verdict());
    }

    @Test
    void withoutTheEraSwitchTheLaterFixMasksTheLegacyStart() throws Exception {
        ScenarioResult r = s.run(true, Duration.ofSeconds(30), false);
        assertFalse(r.failed(), r.verdict() + "\n" + r.dump());
        assertTrue(r.detail().contains("(status 0)"), r.verdict());
    }
}
