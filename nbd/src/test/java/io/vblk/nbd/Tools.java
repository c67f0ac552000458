package io.vblk.nbd;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs the real NBD peers of the integration tests — {@code qemu-img},
 * {@code qemu-io} (Debian qemu-utils), {@code nbdinfo} (libnbd-bin),
 * {@code qemu-storage-daemon} (qemu-system-x86) — each bounded in time. A
 * missing tool fails the test with the package that installs it.
 */
final class Tools {
    static final long TIMEOUT_S = 120;

    private Tools() {
    }

    record Result(int exit, String output) {
    }

    static void require(String tool) {
        String path = System.getenv().getOrDefault("PATH", "/usr/bin:/bin");
        for (String dir : path.split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, tool))) {
                return;
            }
        }
        String pkg = tool.equals("nbdinfo") ? "libnbd-bin" : tool.equals("qemu-storage-daemon") ? "qemu-system-x86"
                : "qemu-utils";
        fail(tool + " is not installed and the NBD interoperability tests need it: apt-get install " + pkg);
    }

    /** Runs {@code cmd}, its output to a file (a hung peer cannot block the reader), bounded by {@link #TIMEOUT_S}. */
    static Result run(List<String> cmd) {
        require(cmd.get(0));
        try {
            Path log = Files.createTempFile("nbd-tool", ".out");
            try {
                Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
                if (!p.waitFor(TIMEOUT_S, TimeUnit.SECONDS)) {
                    p.destroyForcibly();
                    fail(String.join(" ", cmd) + " did not finish within " + TIMEOUT_S + " s; output:\n"
                            + Files.readString(log));
                }
                return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(log);
            }
        } catch (IOException e) {
            throw new AssertionError("cannot run " + String.join(" ", cmd), e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted running " + String.join(" ", cmd), e);
        }
    }

    /** Runs {@code cmd} and expects exit status 0; returns its output. */
    static String ok(String... cmd) {
        Result r = run(List.of(cmd));
        assertEquals(0, r.exit(), () -> String.join(" ", cmd) + " failed:\n" + r.output());
        return r.output();
    }
}
