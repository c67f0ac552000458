package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.vblk.cli.Main;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import picocli.CommandLine;

/** {@code vblk serve}'s command line: usage errors, set-up errors, and a clean stop on SIGTERM. */
class ServeCommandTest {

    private static int run(StringWriter err, String... args) {
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new PrintWriter(new StringWriter()));
        cl.setErr(new PrintWriter(err));
        return cl.execute(args);
    }

    @Test
    void usageErrorsAreOneLineEach(@TempDir Path dir) throws Exception {
        Path img = Tools.bootDisk(dir.resolve("d.raw"), "X", 1 << 20);
        String sock = dir.resolve("s.sock").toString();
        StringWriter err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", sock));
        assertTrue(err.toString().contains("give exactly one of --image FILE and --null SIZE"), err.toString());
        err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", sock, "--image", img.toString(), "--null", "1M"));
        err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", sock, "--null", "lots"));
        assertTrue(err.toString().contains("--null takes a size such as 4k, 64k, 1m or 512, not 'lots'"), err.toString());
        err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", sock, "--image", dir.resolve("none").toString()));
        assertTrue(err.toString().contains("does not exist"), err.toString());
        err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", sock, "--null", "1M", "--num-queues", "0"));
        err = new StringWriter();
        Path notASocket = Files.writeString(dir.resolve("file"), "precious");
        assertEquals(Main.EXIT_FAILED, run(err, "serve", "--socket", notASocket.toString(), "--image", img.toString()));
        assertTrue(err.toString().contains("exists and is not a socket"), err.toString());
        assertEquals("precious", Files.readString(notASocket));
    }

    /** {@code --x-hold-after-take} is for tests only: not in the help, and it counts write requests from 1. */
    @Test
    void theTestOnlyHoldSwitchIsHiddenAndChecked(@TempDir Path dir) {
        StringWriter out = new StringWriter();
        CommandLine cl = new CommandLine(new Main());
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(new StringWriter()));
        assertEquals(0, cl.execute("serve", "--help"));
        assertTrue(out.toString().contains("--poll-max-ns"), out.toString());
        assertFalse(out.toString().contains("hold"), "the test switch is not in the help:\n" + out);
        StringWriter err = new StringWriter();
        assertEquals(Main.EXIT_USAGE, run(err, "serve", "--socket", dir.resolve("s.sock").toString(), "--null", "1M",
                "--x-hold-after-take", "0"));
        assertTrue(err.toString().contains("--x-hold-after-take counts write requests from 1"), err.toString());
    }

    @Test
    void sigtermStopsTheServerAndRemovesItsSocket(@TempDir Path dir) throws Exception {
        Path img = Tools.bootDisk(dir.resolve("d.raw"), "X", 1 << 20);
        Path sock = dir.resolve("s.sock");
        Path log = dir.resolve("serve.out"); // a file, not a pipe: output written while the JVM exits is kept
        Process p = new ProcessBuilder(Tools.javaCommand("io.vblk.cli.Main", "serve", "--socket", sock.toString(),
                "--image", img.toString(), "--read-only")).redirectErrorStream(true).redirectOutput(log.toFile())
                .start();
        try {
            SerialLog out = new SerialLog(log);
            out.await("listening on " + sock, 1, Duration.ofSeconds(60), () -> "");
            assertTrue(Files.exists(sock));
            Tools.stop(p, Duration.ofSeconds(30));
            assertTrue(Tools.read(log).contains("vblk serve: stopped"), Tools.read(log));
            assertFalse(Files.exists(sock), "the socket file is removed on exit");
        } finally {
            Tools.kill(p);
        }
    }
}
