package io.vblk.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code vblk nbd} as a user runs it: a child JVM exports a qcow2, qemu-io
 * writes through the URI it prints, nbdinfo maps it, and SIGTERM closes the
 * image so the qcow2 is consistent and holds the write afterwards.
 */
class NbdCommandEndToEndTest {
    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), String.join(" ", cmd) + " finished");
        assertEquals(0, p.exitValue(), () -> String.join(" ", cmd) + ":\n" + out);
        return out;
    }

    @Test
    void vblkNbdServesAQcow2UntilSigtermAndLeavesItConsistent(@TempDir Path dir) throws Exception {
        QemuImg.require();
        Path img = dir.resolve("disk.qcow2");
        Path sock = dir.resolve("nbd.sock");
        run("qemu-img", "create", "-q", "-f", "qcow2", img.toString(), "64M");
        run("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 1M 64k", img.toString());
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", System.getProperty("java.class.path"), "io.vblk.cli.Main",
                "nbd", "--socket", sock.toString(), "--image", img.toString(), "--name", "disk", "--writable",
                "--description", "end to end"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        try {
            assertTimeoutPreemptively(Duration.ofSeconds(180), () -> {
                BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
                String first = r.readLine();
                String uri = "nbd+unix:///disk?socket=" + sock;
                assertTrue(first != null && first.contains("serving") && first.contains(uri), "first line: " + first);
                String w = run("qemu-io", "-f", "raw", "-c", "write -P 0x77 8M 1M", "-c", "read -P 0x11 1M 64k", uri);
                assertFalse(w.contains("fail"), w);
                String map = run("nbdinfo", "--map", uri);
                assertTrue(map.contains("1048576       65536    0  data"), map);
                assertTrue(map.contains("8388608     1048576    0  data"), map);
                assertTrue(run("nbdinfo", "--list", uri).contains("end to end"));
                run("kill", "-TERM", Long.toString(p.pid())); // not Process.destroy(): that closes our end of the pipe
                StringBuilder rest = new StringBuilder();
                for (String l; (l = r.readLine()) != null;) {
                    rest.append(l).append('\n');
                }
                assertTrue(p.waitFor(60, TimeUnit.SECONDS));
                assertTrue(rest.toString().contains("vblk nbd: stopped"), rest.toString());
            });
        } finally {
            p.destroyForcibly();
        }
        assertFalse(Files.exists(sock), "the socket file is removed");
        QemuImg.check(img);
        String back = run("qemu-io", "-f", "qcow2", "-c", "read -P 0x77 8M 1M", "-c", "read -P 0x11 1M 64k", img.toString());
        assertFalse(back.contains("fail"), back);
    }
}
