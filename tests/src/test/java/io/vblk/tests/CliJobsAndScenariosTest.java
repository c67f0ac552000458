package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;

/** {@code vblk scenario} and {@code vblk boot --job}: output, verdicts and exit codes. */
class CliJobsAndScenariosTest {
    private record Run(int exit, String out, String err) {
    }

    private static synchronized Run vblk(String... args) {
        PrintStream oldOut = System.out;
        PrintStream oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int exit = Main.execute(args);
            return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void scenarioUsageAndErrors() {
        Run help = vblk("scenario", "--help");
        assertEquals(0, help.exit());
        assertTrue(help.out().contains("Usage: vblk scenario"), help.out());
        assertTrue(help.out().contains("--legacy"), help.out());
        Run list = vblk("scenario", "--list");
        assertEquals(0, list.exit());
        for (String id : new String[] {"seed-000", "seed-000-reset", "seed-001", "seed-002", "seed-003", "seed-004",
                "seed-001-dataplane"}) {
            assertTrue(list.out().contains(id), list.out());
        }
        Run unknown = vblk("scenario", "seed-999");
        assertEquals(Main.EXIT_USAGE, unknown.exit());
        assertTrue(unknown.err().contains("unknown scenario 'seed-999'"), unknown.err());
        assertEquals(Main.EXIT_USAGE, vblk("scenario").exit());
        assertEquals(Main.EXIT_USAGE, vblk("scenario", "all", "--legacy").exit());
        Run bound = vblk("scenario", "seed-001", "--bound", "soon");
        assertEquals(Main.EXIT_USAGE, bound.exit());
        assertTrue(bound.err().contains("--bound"), bound.err());
    }

    @Test
    void scenarioBothWaysPrintsOneVerdictLineAndExitsZero() {
        Run r = vblk("scenario", "seed-001", "--both", "--bound", "1s");
        assertEquals(0, r.exit(), r.out() + r.err());
        assertTrue(Pattern.compile("(?m)^seed-001 detach-with-pending-bh: fixed behaviour completes in [0-9.]+ ms; "
                + "legacy behaviour hangs \\(detected after [0-9.]+ s\\)$").matcher(r.out()).find(), r.out());
        Run legacy = vblk("scenario", "seed-001", "--legacy", "--dump", "--bound", "1s");
        assertEquals(0, legacy.exit(), legacy.out());
        assertTrue(legacy.out().contains("legacy behaviour hangs"), legacy.out());
        assertTrue(legacy.out().contains("=== vblk event-loop dump"), legacy.out());
    }

    @Test
    void bootWithAMirrorJobPivotsAndBootsFromTheTarget() {
        Run r = vblk("boot", "--job", "mirror", "--resets", "2", "--quiet");
        assertEquals(0, r.exit(), r.out() + r.err());
        assertTrue(r.out().contains("mirror0 (mirror) concluded OK"), r.out());
        assertTrue(r.out().contains("device on 'target'"), r.out());
        assertTrue(r.out().contains("(all MBR OK)"), r.out());
    }

    @Test
    void bootWithCommitAndStreamJobs() {
        Run c = vblk("boot", "--job", "commit", "--resets", "1", "--quiet", "--dataplane", "off", "--iothreads", "0");
        assertEquals(0, c.exit(), c.out() + c.err());
        assertTrue(c.out().contains("commit0 (commit) concluded OK"), c.out());
        Run s = vblk("boot", "--job", "stream", "--resets", "1", "--quiet");
        assertEquals(0, s.exit(), s.out() + s.err());
        assertTrue(s.out().contains("stream0 (stream) concluded OK"), s.out());
        Run bad = vblk("boot", "--job", "backup");
        assertEquals(Main.EXIT_USAGE, bad.exit());
        assertTrue(bad.err().contains("--job must be"), bad.err());
    }
}
