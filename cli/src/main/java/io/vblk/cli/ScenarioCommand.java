package io.vblk.cli;

import io.vblk.bench.Units;
import io.vblk.guest.scenario.Scenario;
import io.vblk.guest.scenario.ScenarioResult;
import io.vblk.guest.scenario.Scenarios;

import java.io.PrintWriter;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/**
 * {@code vblk scenario}: replays the historic QEMU bugs — each one's failure
 * staged deterministically on the machine — and prints one verdict line per
 * scenario. The fixed behaviour must complete; with the bug's
 * {@code LegacyBehavior} switched on the same steps must fail as the bug did
 * (a hang detected by the watchdog, or another named failure). {@code all}
 * ends with a table (id, title, upstream commit, both verdicts) and checks
 * that no run left a thread or an event-loop context behind
 * ({@link LeftBehind}) nor a loop running when its machine closed
 * ({@link StuckLoopLog}). {@code --list} names each bug's upstream fix,
 * {@code --explain} tells a scenario's story. Exit 0 only when every run
 * behaved so.
 */
@Command(name = "scenario", mixinStandardHelpOptions = true,
        description = {"Replay a historic QEMU bug: the hang or race its upstream fix cured, staged deterministically.",
                "NAME is a scenario id (see --list) or 'all'. A named scenario runs with the fix (or, with --legacy, "
                        + "with the pre-fix behaviour); 'all' runs every scenario both ways and ends with a table."},
        footer = {"", "Examples:", "  vblk scenario all", "  vblk scenario --list",
                "  vblk scenario seed-004 --explain",
                "  vblk scenario seed-002 --legacy --dump", "",
                "Exit status: 0 every fixed run completed and every legacy run failed as the bug did (as expected);",
                "1 a legacy run completed, a scenario failed, or a run left a thread or context behind;",
                "2 bad usage; 3 a fixed run hung or failed."})
final class ScenarioCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "NAME", description = "Scenario id, or 'all'.")
    String name;

    @Option(names = "--legacy", description = "Run with the bug's pre-fix behaviour switched on (expect its failure).")
    boolean legacy;

    @Option(names = "--both", description = "Run a named scenario with the fix and with the pre-fix behaviour.")
    boolean both;

    @Option(names = "--dump", description = "Print the event-loop dump of every hang.")
    boolean dump;

    @Option(names = "--bound", paramLabel = "DURATION", defaultValue = "2s",
            description = "How long a wait may take before it counts as a hang (e.g. 2s, 500ms). Default ${DEFAULT-VALUE}.")
    String bound;

    @Option(names = "--list", description = "List the scenarios: id, upstream commit, title and what the bug was.")
    boolean list;

    @Option(names = "--explain", description = "Tell a scenario's story (threads, steps, where the fix intervenes, "
            + "what the legacy switch reverts) and exit.")
    boolean explain;

    /** How long threads of a finished run may take to end before they count as left behind. */
    static final Duration LEAK_BOUND = Duration.ofSeconds(5);

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<Scenario> all = Scenarios.all();
        if (list) {
            out.print(listing(all));
            out.flush();
            return 0;
        }
        Duration hangBound;
        try {
            hangBound = parseDuration(bound);
        } catch (IllegalArgumentException e) {
            err.println("vblk scenario: " + e.getMessage());
            return Main.EXIT_USAGE;
        }
        if (name == null) {
            err.println("vblk scenario: name a scenario or 'all' (see 'vblk scenario --list')");
            return Main.EXIT_USAGE;
        }
        if (explain) {
            Scenario s = Scenarios.byId(name);
            if (s == null) {
                err.println("vblk scenario: --explain needs a scenario id, not '" + name
                        + "' (see 'vblk scenario --list')");
                return Main.EXIT_USAGE;
            }
            out.print(explanation(s));
            out.flush();
            return 0;
        }
        List<Scenario> chosen = new ArrayList<>();
        boolean runFixed;
        boolean runLegacy;
        if (name.equals("all")) {
            if (legacy) {
                err.println("vblk scenario: 'all' runs both behaviours; --legacy applies to a named scenario");
                return Main.EXIT_USAGE;
            }
            chosen.addAll(all);
            runFixed = true;
            runLegacy = true;
        } else {
            Scenario s = Scenarios.byId(name);
            if (s == null) {
                List<String> ids = new ArrayList<>();
                all.forEach(x -> ids.add(x.id()));
                err.println("vblk scenario: unknown scenario '" + name + "' (known: " + String.join(", ", ids)
                        + ", or 'all')");
                return Main.EXIT_USAGE;
            }
            if (legacy && both) {
                err.println("vblk scenario: --legacy and --both exclude each other");
                return Main.EXIT_USAGE;
            }
            chosen.add(s);
            runFixed = both || !legacy;
            runLegacy = both || legacy;
        }
        int exit = 0;
        List<Row> rows = new ArrayList<>();
        for (Scenario s : chosen) {
            Row row = new Row(s);
            if (runFixed) {
                row.fixed = runChecked(s, false, hangBound, row, LEAK_BOUND);
            }
            if (runLegacy && row.failure == null) {
                row.old = runChecked(s, true, hangBound, row, LEAK_BOUND);
            }
            rows.add(row);
            out.println(verdictLine(s, row.fixed, row.old, row.failure, runFixed && runLegacy));
            for (String left : row.leftBehind) {
                out.println(s.id() + ": LEFT BEHIND " + left);
            }
            for (ScenarioResult r : new ScenarioResult[] {row.fixed, row.old}) {
                if (dump && r != null && r.dump() != null) {
                    out.println(r.dump());
                }
            }
            out.flush();
            if (row.failure != null || (row.old != null && !row.old.asExpected()) || !row.leftBehind.isEmpty()) {
                exit = Math.max(exit, Main.EXIT_FAILED);
            }
            if (row.fixed != null && !row.fixed.asExpected()) {
                exit = Main.EXIT_HANG;
            }
        }
        if (chosen.size() > 1) {
            out.println();
            out.print(table(rows));
            out.flush();
        }
        return exit;
    }

    /**
     * One run, then the check that it left no thread or context behind and
     * no loop running when its machine closed (recorded in {@code row}); an
     * exception is the run's failure, named in the row, never a trace.
     */
    static ScenarioResult runChecked(Scenario s, boolean legacy, Duration hangBound, Row row, Duration leakBound) {
        String mode = legacy ? "legacy" : "fixed";
        LeftBehind before = LeftBehind.take();
        ScenarioResult r = null;
        try (StuckLoopLog log = StuckLoopLog.open()) {
            try {
                r = s.run(legacy, hangBound);
            } catch (Exception | AssertionError e) {
                row.failure = mode + " run failed: " + e.getMessage();
            }
            for (String line : log.stuckLoops()) {
                row.leftBehind.add("by the " + mode + " run: an event loop still running when its machine closed ("
                        + line + ")");
            }
        }
        for (String left : LeftBehind.take().since(before, leakBound)) {
            row.leftBehind.add("by the " + mode + " run: " + left);
        }
        return r;
    }

    /** A scenario's runs in {@code all}: its table row. */
    static final class Row {
        final Scenario scenario;
        ScenarioResult fixed;
        ScenarioResult old;
        String failure;
        final List<String> leftBehind = new ArrayList<>();

        Row(Scenario scenario) {
            this.scenario = scenario;
        }

        /** "ok", or what was not as expected. */
        String status() {
            List<String> wrong = new ArrayList<>();
            if (failure != null) {
                wrong.add("a run failed");
            }
            if (fixed != null && !fixed.asExpected()) {
                wrong.add("fixed run " + fixed.failure());
            }
            if (old != null && !old.asExpected()) {
                wrong.add("legacy run completed");
            }
            if (!leftBehind.isEmpty()) {
                wrong.add("left threads or contexts behind");
            }
            return wrong.isEmpty() ? "ok" : "UNEXPECTED: " + String.join(", ", wrong);
        }
    }

    /** The summary table of {@code all}: id, title, upstream commit, fixed verdict, legacy verdict, status. */
    static String table(List<Row> rows) {
        List<String[]> cells = new ArrayList<>();
        cells.add(new String[] {"ID", "TITLE", "UPSTREAM", "FIXED", "LEGACY", "RESULT"});
        int ok = 0;
        for (Row r : rows) {
            String commit = r.scenario.upstreamCommit();
            cells.add(new String[] {r.scenario.id(), r.scenario.title(), commit.isEmpty() ? "-" : commit,
                    cell(r.fixed, r.failure), cell(r.old, r.failure), r.status()});
            if (r.status().equals("ok")) {
                ok++;
            }
        }
        int[] width = new int[6];
        for (String[] c : cells) {
            for (int i = 0; i < c.length; i++) {
                width[i] = Math.max(width[i], c[i].length());
            }
        }
        StringBuilder sb = new StringBuilder();
        for (String[] c : cells) {
            StringBuilder line = new StringBuilder();
            for (int i = 0; i < c.length; i++) {
                line.append(i == c.length - 1 ? c[i] : String.format("%-" + width[i] + "s  ", c[i]));
            }
            sb.append(line.toString().stripTrailing()).append('\n');
        }
        sb.append(ok).append(" of ").append(rows.size()).append(" scenarios as expected\n");
        return sb.toString();
    }

    private static String cell(ScenarioResult r, String failure) {
        if (r != null) {
            return r.brief();
        }
        return failure != null ? "error (see above)" : "-";
    }

    /** {@code --list}: one line per scenario — id, upstream commit ("-" if unconfirmed), title and summary. */
    static String listing(List<Scenario> all) {
        int idWidth = 0;
        for (Scenario s : all) {
            idWidth = Math.max(idWidth, s.id().length());
        }
        StringBuilder sb = new StringBuilder();
        for (Scenario s : all) {
            String commit = s.upstreamCommit().isEmpty() ? "-" : s.upstreamCommit();
            sb.append(String.format("%-" + idWidth + "s  %-10s  %s: %s%n", s.id(), commit, s.title(), s.summary()));
        }
        return sb.toString();
    }

    /** {@code --explain}: the scenario's header (id, title, upstream commit, summary) and its story. */
    static String explanation(Scenario s) {
        String commit = s.upstreamCommit().isEmpty() ? "(not confirmed)" : s.upstreamCommit();
        return s.id() + " " + s.title() + "\n"
                + "upstream fix: " + commit + "\n"
                + "bug: " + s.summary() + "\n\n"
                + s.explain() + "\n";
    }

    /** One line per scenario: both outcomes for 'all', the verdict with its detail for a single run. */
    static String verdictLine(Scenario s, ScenarioResult fixed, ScenarioResult old, String failure, boolean bothModes) {
        StringBuilder sb = new StringBuilder();
        if (bothModes || failure != null) {
            sb.append(s.id()).append(' ').append(s.title()).append(": ");
            List<String> parts = new ArrayList<>();
            if (fixed != null) {
                parts.add(fixed.outcome());
            }
            if (old != null) {
                parts.add(old.outcome());
            }
            if (failure != null) {
                parts.add(failure);
            }
            sb.append(String.join("; ", parts));
        } else {
            sb.append((fixed != null ? fixed : old).verdict());
        }
        if (fixed != null && !fixed.asExpected()) {
            sb.append("  [UNEXPECTED: the fixed behaviour hung]");
        }
        if (old != null && !old.asExpected()) {
            sb.append("  [UNEXPECTED: the legacy behaviour did not hang]");
        }
        return sb.toString();
    }

    /** The watchdog bound: a duration as every command takes one (bench's {@link Units}), 100 ms to 600 s. */
    static Duration parseDuration(String s) {
        Duration d = Duration.ofNanos(Units.parseDurationNs("bound", s));
        if (d.toMillis() < 100 || d.toMillis() > 600_000) {
            throw new IllegalArgumentException("--bound must be between 100ms and 600s, not '" + s + "'");
        }
        return d;
    }
}
