package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.guest.scenario.Scenario;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every seed scenario of issue 9 both ways: with the seed's legacy switch the
 * watchdog detects the hang, and its dump shows the mechanism; with the fix
 * the same steps complete (and the scenario's own checks — data, pivots,
 * boots — pass). Seed 004 has its own end-to-end test.
 */
@Tag("concurrency")
class SeedScenariosTest {
    private static final Duration HANG = Duration.ofSeconds(2);
    private static final Duration OK = Duration.ofSeconds(30);

    /** What each legacy dump must show: the mechanism of the hang. */
    private static final Map<String, List<String>> DUMP = Map.of(
            "seed-000", List.of("job-completion:stream0", "io.vblk.job.Job.pauseSync",
                    "job 'stream0' (stream) status=running run=ENDED busy=false paused=false"),
            "seed-000-reset", List.of("pending BHs (1): [job-enter:mirror0]",
                    "lock: held by 'main-loop' depth 1 (threads waiting)", "childDetachAioContext",
                    "VirtioBlkDataplane.stopIoeventfd"),
            "seed-001", List.of("pending BHs (1): [drain-end:disk]", "node 'disk' (hook) ctx=main-loop in_flight=1"),
            "seed-002", List.of("lock: held by 'main-loop' depth 1 (threads waiting)", "ExternalSnapshot.prepare",
                    "BlockNode.drainedBegin"),
            "seed-003", List.of("lock: held by 'main-loop' depth 3 (threads waiting)", "BlockLayer.inactivateAll"));

    static Stream<Arguments> scenarios() {
        return Scenarios.all().stream().filter(s -> DUMP.containsKey(s.id())).map(s -> Arguments.of(s.id(), s));
    }

    @ParameterizedTest(name = "{0} legacy")
    @MethodSource("scenarios")
    void legacyBehaviourHangsAndTheDumpShowsWhy(String id, Scenario s) throws Exception {
        ScenarioResult r = s.run(true, HANG);
        assertTrue(r.hung(), r.verdict());
        assertTrue(r.legacy());
        assertNotNull(r.dump(), r.verdict());
        for (String needle : DUMP.get(id)) {
            assertTrue(r.dump().contains(needle), "the dump of " + id + " shows '" + needle + "':\n" + r.dump());
        }
        assertTrue(r.verdict().startsWith(id + " " + s.title() + ": legacy behaviour hangs (detected after"),
                r.verdict());
    }

    @ParameterizedTest(name = "{0} fixed")
    @MethodSource("scenarios")
    void fixedBehaviourCompletes(String id, Scenario s) throws Exception {
        ScenarioResult r = s.run(false, OK);
        assertFalse(r.hung(), r.verdict() + "\n" + r.dump());
        assertTrue(r.verdict().startsWith(id + " " + s.title() + ": fixed behaviour completes in"), r.verdict());
    }
}
