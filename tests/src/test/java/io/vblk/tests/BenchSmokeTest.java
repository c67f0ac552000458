package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code vblk bench --runtime 1s --verify} end to end: it runs, verifies every read, writes JSON. Speed is not checked. */
class BenchSmokeTest {

    private static int run(StringBuilder output, String... args) {
        PrintStream out = System.out;
        PrintStream err = System.err;
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        PrintStream capture = new PrintStream(buf, true, StandardCharsets.UTF_8);
        System.setOut(capture);
        System.setErr(capture);
        try {
            return Main.execute(args);
        } finally {
            System.setOut(out);
            System.setErr(err);
            output.append(buf.toString(StandardCharsets.UTF_8));
        }
    }

    @Test
    void aShortVerifiedRunOnAFileReadsBackEverythingItWrote(@TempDir Path dir) throws Exception {
        Path json = dir.resolve("bench.json");
        StringBuilder out = new StringBuilder();
        int rc = run(out, "bench", "--runtime", "1s", "--verify", "--backend", "file", "--size", "64m", "--rw",
                "randrw", "--qd", "8", "--ramp", "200ms", "--json", json.toString());
        assertEquals(0, rc, out.toString());
        assertTrue(out.toString().contains("every read matched (0 mismatches)"), out.toString());
        assertTrue(out.toString().contains("IOPS"), out.toString());
        String j = Files.readString(json);
        assertTrue(j.contains("\"mismatches\": 0"), j);
        assertTrue(j.contains("\"errors\": 0"), j);
        assertTrue(j.contains("\"verify\": true"), j);
        assertTrue(!j.contains("\"requests\": 0,"), j);
    }

    @Test
    void verifyOnTheNullBackendIsRefusedInOneLine() {
        StringBuilder out = new StringBuilder();
        assertEquals(Main.EXIT_USAGE, run(out, "bench", "--runtime", "1s", "--verify"));
        assertEquals(1, out.toString().strip().lines().count(), out.toString());
        assertTrue(out.toString().contains("null backend discards writes"), out.toString());
    }

    @Test
    void badOptionValuesAreOneLineErrors() {
        String[][] bad = {{"--qd", "0"}, {"--bs", "4x"}, {"--rw", "sideways"}, {"--runtime", "soon"},
                {"--dataplane", "maybe"}, {"--backend", "tape"}, {"--poll-max-ns", "-1"}, {"--sweep", "q=1"}};
        for (String[] b : bad) {
            StringBuilder out = new StringBuilder();
            assertEquals(Main.EXIT_USAGE, run(out, "bench", b[0], b[1]), String.join(" ", b) + ": " + out);
            assertEquals(1, out.toString().strip().lines().count(), String.join(" ", b) + ": " + out);
            assertTrue(out.toString().startsWith("vblk bench: "), out.toString());
        }
    }
}
