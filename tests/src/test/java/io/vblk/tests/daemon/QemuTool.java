package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs QEMU's command-line clients ({@code qemu-io}, {@code qemu-img}) and
 * other tools to their end, bounded, for the daemon's integration tests.
 */
final class QemuTool {
    static final long BOUND_S = 180;

    private QemuTool() {
    }

    record Result(int exit, String output) {
    }

    /** Runs {@code cmd} with stdin from /dev/null; stdout and stderr together. */
    static Result run(String... cmd) throws Exception {
        Path out = Files.createTempFile("vblk-tool", ".out");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            if (!p.waitFor(BOUND_S, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                fail(String.join(" ", cmd) + " did not finish within " + BOUND_S + " s: " + Files.readString(out));
            }
            return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
        } finally {
            Files.deleteIfExists(out);
        }
    }

    /** Runs {@code cmd}; a non-zero exit fails the test with the output. Returns the output. */
    static String ok(String... cmd) throws Exception {
        Result r = run(cmd);
        if (r.exit() != 0) {
            fail(String.join(" ", cmd) + " failed (exit " + r.exit() + "):\n" + r.output());
        }
        return r.output();
    }

    /** {@code nbd+unix:///NAME?socket=P}. */
    static String nbdUri(String name, Path socket) {
        return "nbd+unix:///" + name + "?socket=" + socket;
    }

    /**
     * {@code qemu-io -f raw URI -c C1 -c C2 ...}; fails the test on a
     * non-zero exit or on any failed command ("Pattern verification failed",
     * "failed:"): qemu-io exits 0 even when a command failed.
     */
    static String qemuIo(String uri, String... commands) throws Exception {
        return qemuIo(false, uri, commands);
    }

    /** {@link #qemuIo(String, String...)}, opening the image read-only ({@code -r}) if asked. */
    static String qemuIo(boolean readOnly, String uri, String... commands) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("qemu-io", "-f", "raw"));
        if (readOnly) {
            cmd.add("-r");
        }
        for (String c : commands) {
            cmd.add("-c");
            cmd.add(c);
        }
        cmd.add(uri);
        String out = ok(cmd.toArray(new String[0]));
        if (out.contains("Pattern verification failed") || out.contains("failed:")) {
            fail(String.join(" ", cmd) + ":\n" + out);
        }
        return out;
    }
}
