package io.vblk.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code vblk nbd}'s usage checks: each mistake is one line and exit status 2, before anything is opened. */
class NbdCommandTest {
    private static String[] run(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int code = Main.execute(new PrintWriter(out), new PrintWriter(err), args);
        return new String[] {Integer.toString(code), out.toString(), err.toString()};
    }

    @Test
    void usageMistakesAreRefusedWithExitStatus2(@TempDir Path dir) throws Exception {
        Path img = dir.resolve("d.raw");
        Files.write(img, new byte[4096]);
        String[] neither = run("nbd", "--image", img.toString());
        assertEquals("2", neither[0]);
        assertTrue(neither[2].contains("exactly one of --socket PATH and --port N"), neither[2]);
        String[] both = run("nbd", "--image", img.toString(), "--socket", dir.resolve("s").toString(), "--port", "0");
        assertEquals("2", both[0]);
        String[] missing = run("nbd", "--image", dir.resolve("nope.raw").toString(), "--socket", dir.resolve("s").toString());
        assertEquals("2", missing[0]);
        assertTrue(missing[2].contains("does not exist"), missing[2]);
        String[] port = run("nbd", "--image", img.toString(), "--port", "70000");
        assertEquals("2", port[0]);
        assertTrue(port[2].contains("port"), port[2]);
    }
}
