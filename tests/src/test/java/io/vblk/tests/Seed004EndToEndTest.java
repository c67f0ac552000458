package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Seed004MbrRead;

import java.time.Duration;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Seed 004 end to end: the firmware's MBR read hangs only with the pre-fix notify accept. */
@Tag("concurrency")
class Seed004EndToEndTest {

    @Test
    void legacyNotifyAcceptHangsTheMbrReadAndTheDumpSaysWhy() throws Exception {
        ScenarioResult r = new Seed004MbrRead().run(true, Duration.ofSeconds(2));
        assertTrue(r.hung(), r.verdict());
        assertTrue(r.detail().contains("hang at MBR read"), r.verdict());
        assertTrue(r.dump().contains("AioContext 'io0'"), r.dump());
        assertTrue(r.dump().contains("phase=SLEEPING notify_me=2 notified=false external_disable_cnt=0"), r.dump());
        assertTrue(r.dump().contains("virtio-blk0-vq0-kick(fd="), r.dump());
        assertTrue(r.dump().contains("external, pollable, masked)"), r.dump());
    }

    @Test
    void fixedBehaviourBoots() throws Exception {
        ScenarioResult r = new Seed004MbrRead().run(false, Duration.ofSeconds(10));
        assertFalse(r.hung(), r.verdict());
    }
}
