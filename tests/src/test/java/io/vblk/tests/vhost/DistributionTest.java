package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The release as a user installs it: the tarball that {@code mvn package}
 * leaves in cli/target, unpacked into an empty directory outside the
 * checkout, run with an empty home (no ~/.m2) and nothing of the source tree:
 * it names its version and commit, boots the simulated guest (from its own
 * disk and from a qcow2 image it must probe), and serves a disk that
 * {@code vblk boot --vhost-user} boots from.
 */
class DistributionTest {
    private static final Duration BOUND = Duration.ofSeconds(120);

    @Test
    void theUnpackedReleaseBootsAndServes(@TempDir Path dir) throws Exception {
        Path tarball = tarball();
        Path install = Files.createDirectories(dir.resolve("opt"));
        Process tar = new ProcessBuilder("tar", "-xzf", tarball.toString(), "-C", install.toString())
                .redirectErrorStream(true).start();
        assertEquals(0, waitFor(tar, "tar"), new String(tar.getInputStream().readAllBytes()));
        Path top;
        try (Stream<Path> s = Files.list(install)) {
            top = s.findFirst().orElseThrow();
        }
        Path vblk = top.resolve("bin/vblk");
        assertTrue(Files.isExecutable(vblk), "bin/vblk is executable");
        assertTrue(Files.exists(top.resolve("LICENSE")) && Files.exists(top.resolve("README.md")));
        Path home = Files.createDirectories(dir.resolve("home"));

        Result version = run(home, dir, vblk.toString(), "--version");
        assertEquals(0, version.code, version.out);
        assertTrue(version.out.matches("(?s)vblk \\S+ \\(commit [0-9a-f]{7,}.*\\).*"), version.out);

        Result boot = run(home, dir, vblk.toString(), "boot", "--quiet");
        assertEquals(0, boot.code, boot.out);
        assertTrue(boot.out.contains("boots                  1 (all MBR OK)"), boot.out);

        Path disk = Tools.bootDisk(dir.resolve("disk.raw"), "DIST", 1 << 20);
        // a qcow2 image, probed: the shaded jar must still find the qcow2 format through its services file,
        // or the probe falls back to raw and the boot sector it reads is qcow2's header
        Path qcow2 = dir.resolve("disk.qcow2");
        Process convert = new ProcessBuilder(Tools.require("qemu-img").toString(), "convert", "-f", "raw", "-O",
                "qcow2", disk.toString(), qcow2.toString()).redirectErrorStream(true).start();
        assertEquals(0, waitFor(convert, "qemu-img convert"), new String(convert.getInputStream().readAllBytes()));
        Result probed = run(home, dir, vblk.toString(), "boot", "--quiet", "--image", qcow2.toString());
        assertEquals(0, probed.code, "a qcow2 image boots from the release: " + probed.out);

        Path sock = dir.resolve("serve.sock");
        Path log = dir.resolve("serve.log");
        ProcessBuilder pb = new ProcessBuilder(vblk.toString(), "serve", "--socket", sock.toString(), "--image",
                disk.toString(), "--read-only").directory(dir.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        environment(pb.environment(), home);
        Process serve = pb.start();
        try {
            new SerialLog(log).await("listening on " + sock, 1, BOUND, () -> "");
            Result viaVhost = run(home, dir, vblk.toString(), "boot", "--quiet", "--vhost-user", sock.toString());
            assertEquals(0, viaVhost.code, viaVhost.out);
            assertTrue(viaVhost.out.contains("boots                  1 (all MBR OK)"), viaVhost.out);
            int code = Tools.stop(serve, Duration.ofSeconds(30));
            assertEquals(143, code, "SIGTERM ends the JVM (128 + 15) after a clean stop: " + Tools.read(log));
            assertTrue(Tools.read(log).contains("vblk serve: stopped"), Tools.read(log));
        } finally {
            Tools.kill(serve);
        }
    }

    /** The tarball the cli module's package phase built (the reactor builds cli before this module). */
    private static Path tarball() throws IOException {
        Path target = Path.of("..", "cli", "target").toAbsolutePath().normalize();
        List<Path> found = new ArrayList<>();
        if (Files.isDirectory(target)) {
            try (Stream<Path> s = Files.list(target)) {
                s.filter(p -> p.getFileName().toString().matches("vblk-.*\\.tar\\.gz")).forEach(found::add);
            }
        }
        if (found.size() != 1) {
            fail("expected one vblk-*.tar.gz in " + target + " (built by `mvn package` of the cli module), found "
                    + found);
        }
        return found.get(0);
    }

    private record Result(int code, String out) {
    }

    private static Result run(Path home, Path cwd, String... cmd) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(cwd.toFile()).redirectErrorStream(true);
        environment(pb.environment(), home);
        Path out = Files.createTempFile(cwd, "run-", ".out");
        pb.redirectOutput(out.toFile());
        Process p = pb.start();
        int code = waitFor(p, String.join(" ", cmd));
        return new Result(code, Files.readString(out));
    }

    /** An empty home (no Maven repository), Java from this JVM, and no trace of the checkout. */
    private static void environment(Map<String, String> env, Path home) {
        env.put("HOME", home.toString());
        env.put("JAVA_HOME", System.getProperty("java.home"));
        env.remove("MAVEN_OPTS");
        env.remove("CLASSPATH");
    }

    private static int waitFor(Process p, String what) throws InterruptedException {
        if (!p.waitFor(BOUND.toSeconds(), TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail(what + " did not finish within " + BOUND);
        }
        return p.exitValue();
    }
}
