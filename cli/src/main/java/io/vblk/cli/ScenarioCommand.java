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
 * {@code vblk scenario}: runs the seed scenarios — each seed's hang staged
 * deterministically — and prints one verdict line per scenario. The fixed
 * behaviour must complete; with the seed's {@code LegacyBehavior} switched on
 * the same steps must hang, detected by the watchdog. Exit 0 only when every
 * run behaved so.
 */
@Command(name = "scenario", mixinStandardHelpOptions = true,
        description = {"Run a seed scenario: the hang a seed commit fixed, staged deterministically.",
                "NAME is a scenario id (see --list) or 'all'. A named scenario runs with the fix (or, with --legacy, "
                        + "with the pre-fix behaviour); 'all' runs every scenario both ways."},
        footer = {"", "Examples:", "  vblk scenario all", "  vblk scenario seed-002 --legacy --dump", "",
                "Exit status: 0 every fixed run completed and every legacy run hung (as expected);",
                "1 a legacy run completed or a scenario failed; 2 bad usage; 3 a fixed run hung."})
final class ScenarioCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Parameters(index = "0", arity = "0..1", paramLabel = "NAME", description = "Scenario id, or 'all'.")
    String name;

    @Option(names = "--legacy", description = "Run with the seed's pre-fix behaviour switched on (expect a hang).")
    boolean legacy;

    @Option(names = "--both", description = "Run a named scenario with the fix and with the pre-fix behaviour.")
    boolean both;

    @Option(names = "--dump", description = "Print the event-loop dump of every hang.")
    boolean dump;

    @Option(names = "--bound", paramLabel = "DURATION", defaultValue = "2s",
            description = "How long a wait may take before it counts as a hang (e.g. 2s, 500ms). Default ${DEFAULT-VALUE}.")
    String bound;

    @Option(names = "--list", description = "List the scenarios and exit.")
    boolean list;

    @Override
    public Integer call() {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        List<Scenario> all = Scenarios.all();
        if (list) {
            for (Scenario s : all) {
                out.printf("%-20s %s%n", s.id(), s.title());
            }
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
        for (Scenario s : chosen) {
            ScenarioResult fixed = null;
            ScenarioResult old = null;
            String failure = null;
            if (runFixed) {
                try {
                    fixed = s.run(false, hangBound);
                } catch (Exception | AssertionError e) {
                    failure = "fixed run failed: " + e.getMessage();
                }
            }
            if (runLegacy && failure == null) {
                try {
                    old = s.run(true, hangBound);
                } catch (Exception | AssertionError e) {
                    failure = "legacy run failed: " + e.getMessage();
                }
            }
            out.println(verdictLine(s, fixed, old, failure, runFixed && runLegacy));
            for (ScenarioResult r : new ScenarioResult[] {fixed, old}) {
                if (dump && r != null && r.dump() != null) {
                    out.println(r.dump());
                }
            }
            out.flush();
            if (failure != null || (old != null && !old.asExpected())) {
                exit = Math.max(exit, Main.EXIT_FAILED);
            }
            if (fixed != null && !fixed.asExpected()) {
                exit = Main.EXIT_HANG;
            }
        }
        return exit;
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
