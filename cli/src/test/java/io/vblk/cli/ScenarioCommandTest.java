package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.aio.AioWait;
import io.vblk.aio.IOThread;
import io.vblk.aio.MainLoop;
import io.vblk.guest.scenario.Scenario;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** {@code vblk scenario}: the --list and --explain output, the table of 'all', and the left-behind check. */
@Tag("concurrency")
class ScenarioCommandTest {
    /** The seeds' upstream fixes (confirmed against the upstream commit texts). */
    private static final Map<String, String> SEED_COMMITS = Map.of(
            "seed-000", "91af091f92", "seed-000-reset", "91af091f92",
            "seed-001", "c2b6428d38", "seed-001-dataplane", "c2b6428d38",
            "seed-002", "2d24b60b77", "seed-003", "bd6458e410", "seed-004", "b37548fcd1");

    /** The fixes issue 20's extras replay: id -> {upstream commit ("" where not confirmed), legacy switch}. */
    private static final Map<String, String[]> EXTRAS = Map.of(
            "017-unrealize-drain", new String[] {"7bfde688fb", "NO_DRAIN_IN_UNREALIZE"},
            "018-delegate-main-poll", new String[] {"3c18a92dc4", "MAIN_CONTEXT_HOME_WITHOUT_BQL"},
            "019-enable-notification-mb", new String[] {"", "NO_MB_ON_ENABLE_NOTIFICATION"},
            "020-thread-pool-nested-poll", new String[] {"3c80ca158c", "THREAD_POOL_BH_NOT_RESCHEDULED"},
            "021-drain-before-remove-bs", new String[] {"4295c5fc61", "NO_DRAIN_IN_BLK_REMOVE_BS"});

    private static BootCommandTest.Result run(String... args) {
        return BootCommandTest.run(args);
    }

    @Test
    void listNamesEachSeedsUpstreamCommitAndWhatTheBugWas() {
        BootCommandTest.Result r = run("scenario", "--list");
        assertEquals(0, r.code(), r.err());
        for (Map.Entry<String, String> e : SEED_COMMITS.entrySet()) {
            Scenario s = Scenarios.byId(e.getKey());
            assertEquals(e.getValue(), s.upstreamCommit(), e.getKey());
            assertTrue(Pattern.compile("(?m)^" + Pattern.quote(e.getKey()) + " +" + e.getValue() + " +"
                    + Pattern.quote(s.title() + ": " + s.summary()) + "$").matcher(r.out()).find(), r.out());
            assertTrue(s.summary().length() > s.title().length(), e.getKey() + " has a summary of its own");
        }
    }

    @Test
    void explainTellsTheStory() {
        BootCommandTest.Result r = run("scenario", "seed-004", "--explain");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("seed-004 notify-accept-in-nonblocking-poll\nupstream fix: b37548fcd1\nbug: "),
                r.out());
        for (String part : new String[] {"Threads:", "Steps:", "Fix:", "Legacy (NOTIFY_ACCEPT_IN_NONBLOCKING_POLL)"}) {
            assertTrue(r.out().contains(part), part + " in\n" + r.out());
        }
        for (Map.Entry<String, String> e : SEED_COMMITS.entrySet()) {
            String story = run("scenario", e.getKey(), "--explain").out();
            assertTrue(story.contains("Fix:") && story.contains("Legacy (") && story.contains("Threads:"),
                    e.getKey() + ":\n" + story);
        }
        BootCommandTest.Result unknown = run("scenario", "all", "--explain");
        assertEquals(Main.EXIT_USAGE, unknown.code());
        assertTrue(unknown.err().contains("--explain needs a scenario id"), unknown.err());
    }

    @Test
    void theExtrasFollowBug016WithTheirCommitSwitchAndStory() {
        List<String> ids = Scenarios.all().stream().map(Scenario::id).toList();
        assertEquals(ids.size(), ids.stream().distinct().count(), ids.toString());
        int at = ids.indexOf("016-irqfd-by-thread");
        assertEquals(List.of("017-unrealize-drain", "018-delegate-main-poll", "019-enable-notification-mb",
                "020-thread-pool-nested-poll", "021-drain-before-remove-bs"), ids.subList(at + 1, at + 6));
        String list = run("scenario", "--list").out();
        for (Map.Entry<String, String[]> e : EXTRAS.entrySet()) {
            Scenario s = Scenarios.byId(e.getKey());
            String commit = e.getValue()[0];
            String sw = e.getValue()[1];
            assertEquals(commit, s.upstreamCommit(), e.getKey());
            assertTrue(Pattern.compile("(?m)^" + Pattern.quote(e.getKey()) + " +" + (commit.isEmpty() ? "-" : commit)
                    + " +" + Pattern.quote(s.title() + ": " + s.summary()) + "$").matcher(list).find(), list);
            BootCommandTest.Result r = run("scenario", e.getKey(), "--explain");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.out().startsWith(e.getKey() + " " + s.title() + "\nupstream fix: "
                    + (commit.isEmpty() ? "(not confirmed)" : commit) + "\nbug: "), r.out());
            for (String part : new String[] {"Threads:", "Steps", "Fix:", "Legacy (" + sw + ")"}) {
                assertTrue(r.out().contains(part), part + " in\n" + r.out());
            }
            assertEquals(sw, io.vblk.aio.LegacyBehavior.valueOf(sw).name());
        }
    }

    @Test
    void bug015SitsBetween014And016WithItsSwitchAndTheEraSwitchInItsStory() {
        List<String> ids = Scenarios.all().stream().map(Scenario::id).toList();
        int at = ids.indexOf("015-start-kick-drained");
        assertEquals(List.of("014-host-notifiers-stop", "015-start-kick-drained", "016-irqfd-by-thread"),
                ids.subList(at - 1, at + 2));
        Scenario s = Scenarios.byId("015-start-kick-drained");
        assertEquals("d3f6f294ae", s.upstreamCommit());
        String list = run("scenario", "--list").out();
        assertTrue(Pattern.compile("(?m)^015-start-kick-drained +d3f6f294ae +"
                + Pattern.quote(s.title() + ": " + s.summary()) + "$").matcher(list).find(), list);
        BootCommandTest.Result r = run("scenario", "015-start-kick-drained", "--explain");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("015-start-kick-drained " + s.title() + "\nupstream fix: d3f6f294ae\nbug: "),
                r.out());
        for (String part : new String[] {"Threads:", "Steps:", "The fix", "Legacy switch START_KICK_ONLY_WHEN_NOT_DRAINED",
                "Era switch ATTACH_WITHOUT_QUEUE_KICK", "5bdbaebcce"}) {
            assertTrue(r.out().contains(part), part + " in\n" + r.out());
        }
    }

    @Test
    void bug010FollowsBug009WithItsCommitSwitchAndStory() {
        List<String> ids = Scenarios.all().stream().map(Scenario::id).toList();
        assertEquals(ids.indexOf("009-blk-in-flight-drained") + 1, ids.indexOf("010-mirror-wait-in-flight"), ids.toString());
        Scenario s = Scenarios.byId("010-mirror-wait-in-flight");
        assertEquals("ce8cabbd17", s.upstreamCommit());
        String list = run("scenario", "--list").out();
        assertTrue(Pattern.compile("(?m)^010-mirror-wait-in-flight +ce8cabbd17 +"
                + Pattern.quote(s.title() + ": " + s.summary()) + "$").matcher(list).find(), list);
        BootCommandTest.Result r = run("scenario", "010-mirror-wait-in-flight", "--explain");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("010-mirror-wait-in-flight " + s.title() + "\nupstream fix: ce8cabbd17\nbug: "),
                r.out());
        for (String part : new String[] {"Threads:", "restart-waiters", "Fixed (ce8cabbd17)", "Legacy (MIRROR_WAITS_ON_ANY_OP)",
                "is_in_flight"}) {
            assertTrue(r.out().contains(part), part + " in\n" + r.out());
        }
    }

    @Test
    void bug008FollowsBug007WithItsCommitSwitchAndStory() {
        List<String> ids = Scenarios.all().stream().map(Scenario::id).toList();
        assertEquals(ids.indexOf("007-aio-wait-kick") + 1, ids.indexOf("008-epoll-upgrade-race"), ids.toString());
        Scenario s = Scenarios.byId("008-epoll-upgrade-race");
        assertEquals("e62da98527", s.upstreamCommit());
        String list = run("scenario", "--list").out();
        assertTrue(Pattern.compile("(?m)^008-epoll-upgrade-race +e62da98527 +"
                + Pattern.quote(s.title() + ": " + s.summary()) + "$").matcher(list).find(), list);
        BootCommandTest.Result r = run("scenario", "008-epoll-upgrade-race", "--explain");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().startsWith("008-epoll-upgrade-race " + s.title() + "\nupstream fix: e62da98527\nbug: "),
                r.out());
        for (String part : new String[] {"Threads:", "Steps:", "Fix:", "Legacy (EPOLL_UPGRADE_WITHOUT_LIST_LOCK)",
                "upgrade window", "NOT WATCHED"}) {
            assertTrue(r.out().contains(part), part + " in\n" + r.out());
        }
    }

    @Test
    void tableHasAColumnPerVerdictAndCountsTheRowsAsExpected() {
        ScenarioCommand.Row good = row(Scenarios.byId("seed-004"), false, true);
        ScenarioCommand.Row bad = row(Scenarios.byId("seed-002"), false, false);
        ScenarioCommand.Row leaked = row(Scenarios.byId("seed-001"), false, true);
        leaked.leftBehind.add("by the legacy run: thread 'io0' (event loop, RUNNABLE)");
        String t = ScenarioCommand.table(List.of(good, bad, leaked));
        List<String> lines = t.lines().toList();
        assertEquals(5, lines.size(), t);
        assertTrue(lines.get(0).matches("ID +TITLE +UPSTREAM +FIXED +LEGACY +RESULT"), t);
        assertTrue(lines.get(1).matches("seed-004 +notify-accept-in-nonblocking-poll +b37548fcd1 +completes in 3\\.0 ms"
                + " +hangs after 2\\.0 s +ok"), t);
        assertTrue(lines.get(2).matches("seed-002 .* 2d24b60b77 +completes in 3\\.0 ms +completes in 3\\.0 ms"
                + " +UNEXPECTED: legacy run completed"), t);
        assertTrue(lines.get(3).matches("seed-001 .* c2b6428d38 .*UNEXPECTED: left threads or contexts behind"), t);
        assertEquals("1 of 3 scenarios as expected", lines.get(4));
    }

    /** A row as 'all' fills it: a fixed run that completes, a legacy run that hangs or (if not) completes. */
    private static ScenarioCommand.Row row(Scenario s, boolean fixedFails, boolean legacyFails) {
        ScenarioCommand.Row r = new ScenarioCommand.Row(s);
        Duration b = Duration.ofSeconds(2);
        r.fixed = new ScenarioResult(s.id(), s.title(), false, fixedFails, 3_000_000, b, "", null);
        r.old = new ScenarioResult(s.id(), s.title(), true, legacyFails, legacyFails ? 2_000_000_000L : 3_000_000, b,
                "", null);
        return r;
    }

    @Test
    void aNamedFailureShowsInTheLegacyCell() {
        Scenario s = Scenarios.byId("seed-001");
        ScenarioResult lost = new ScenarioResult(s.id(), s.title(), true, true, "loses the guest's kick",
                1_500_000_000L, Duration.ofSeconds(2), "", null);
        assertEquals("loses the guest's kick after 1.5 s", lost.brief());
        assertTrue(!lost.hung() && lost.asExpected());
    }

    @Test
    void allRunsEveryScenarioBothWaysAndEndsWithTheTable() {
        BootCommandTest.Result r = run("scenario", "all", "--bound", "1s");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(!r.out().contains("LEFT BEHIND"), r.out());
        List<String> lines = r.out().lines().toList();
        int header = lines.indexOf(lines.stream().filter(l -> l.startsWith("ID ")).findFirst().orElseThrow());
        List<Scenario> all = Scenarios.all();
        for (int i = 0; i < all.size(); i++) {
            Scenario s = all.get(i);
            String row = lines.get(header + 1 + i);
            assertTrue(row.startsWith(s.id() + " "), row);
            assertTrue(row.contains(" " + (s.upstreamCommit().isEmpty() ? "-" : s.upstreamCommit()) + " "), row);
            assertTrue(row.matches(".* completes in [0-9.]+ ms +\\S.* after [0-9.]+ s +ok"), row);
        }
        assertEquals(all.size() + " of " + all.size() + " scenarios as expected", lines.get(header + 1 + all.size()));
    }

    @Test
    void aLeftEventLoopOrVcpuThreadIsNamedAndFailsTheRun() throws Exception {
        LeftBehind before = LeftBehind.take();
        CountDownLatch end = new CountDownLatch(1);
        Thread vcpu = new Thread(() -> {
            try {
                end.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "vcpu7");
        vcpu.setDaemon(true);
        vcpu.start();
        java.util.concurrent.ForkJoinPool.commonPool().submit(() -> { }).get(); // lingers idle: not the machine's
        MainLoop loop = new MainLoop("leaky-loop", new io.vblk.aio.LegacySwitches());
        IOThread io = loop.newIOThread("leaky-io");
        try {
            List<String> left = LeftBehind.take().since(before, Duration.ofMillis(200));
            String all = String.join("\n", left);
            assertTrue(all.contains("thread 'vcpu7' (vCPU"), all);
            assertTrue(all.contains("thread 'leaky-loop' (event loop"), all); // pins the event-loop thread class
            assertTrue(all.contains("thread 'leaky-io' (event loop"), all);
            assertTrue(all.contains("eventpoll descriptor(s) not closed"), all);
            assertTrue(!all.contains("commonPool"), all);
        } finally {
            end.countDown();
            loop.close();
        }
        vcpu.join();
        assertEquals(List.of(), LeftBehind.take().since(before, Duration.ofSeconds(5)),
                "nothing is left once the loop is closed and the vCPU ended");
        assertTrue(!io.thread().isAlive());
    }

    @Test
    void aLoopStillStuckWhenItsMachineClosesFailsTheRun() {
        Scenario stuck = new Scenario() {
            @Override
            public String id() {
                return "stuck";
            }

            @Override
            public String title() {
                return "closes-a-stuck-loop";
            }

            /** The main loop waits in a nested poll for a condition nobody makes true; then the loop is closed. */
            @Override
            public ScenarioResult run(boolean legacy, Duration hangBound) {
                try (MainLoop loop = new MainLoop("stuck-loop", new io.vblk.aio.LegacySwitches())) {
                    CountDownLatch waiting = new CountDownLatch(1);
                    loop.run("wait forever", () -> {
                        waiting.countDown();
                        AioWait.pollWhile(loop.context(), () -> true);
                    });
                    loop.watchdog(hangBound).await("the loop waiting", waiting);
                }
                return new ScenarioResult(id(), title(), legacy, legacy, 1_000_000, hangBound, "", null);
            }
        };
        ScenarioCommand.Row row = new ScenarioCommand.Row(stuck);
        row.fixed = ScenarioCommand.runChecked(stuck, false, Duration.ofSeconds(5), row, Duration.ofSeconds(5));
        assertEquals(1, row.leftBehind.size(), row.leftBehind.toString());
        assertTrue(row.leftBehind.get(0).startsWith("by the fixed run: an event loop still running when its machine "
                + "closed ("), row.leftBehind.get(0));
        assertTrue(row.leftBehind.get(0).contains("main loop 'stuck-loop': event loops did not stop"),
                row.leftBehind.get(0));
    }

    @Test
    void aScenarioThatLeavesAThreadFailsItsRow() {
        CountDownLatch end = new CountDownLatch(1);
        Scenario leaky = new Scenario() {
            @Override
            public String id() {
                return "leaky";
            }

            @Override
            public String title() {
                return "leaves-a-vcpu";
            }

            @Override
            public ScenarioResult run(boolean legacy, Duration hangBound) {
                if (legacy) {
                    Thread t = new Thread(() -> {
                        try {
                            end.await();
                        } catch (InterruptedException e) {
                            Thread.currentThread().interrupt();
                        }
                    }, "vcpu9");
                    t.setDaemon(true);
                    t.start();
                }
                return new ScenarioResult(id(), title(), legacy, legacy, 1_000_000, hangBound, "", null);
            }
        };
        try {
            ScenarioCommand.Row row = new ScenarioCommand.Row(leaky);
            row.fixed = ScenarioCommand.runChecked(leaky, false, Duration.ofSeconds(1), row, Duration.ofMillis(100));
            row.old = ScenarioCommand.runChecked(leaky, true, Duration.ofSeconds(1), row, Duration.ofMillis(100));
            assertEquals(List.of("by the legacy run: thread 'vcpu9' (vCPU, WAITING)"), row.leftBehind);
            assertEquals("UNEXPECTED: left threads or contexts behind", row.status());
        } finally {
            end.countDown();
        }
    }
}
