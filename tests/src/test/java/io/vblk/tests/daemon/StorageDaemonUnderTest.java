package io.vblk.tests.daemon;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * The daemon the tests speak to: {@code vblk daemon} in a child JVM, or —
 * with {@code -Dvblk.daemon=qsd} — the real {@code qemu-storage-daemon},
 * started with the very same arguments. Both are started with
 * {@code --daemonize --pidfile}, so the parent's exit is the readiness
 * signal (no waiting for socket files). {@link #close()} sends SIGTERM and
 * waits (bounded) for the daemon to end.
 */
final class StorageDaemonUnderTest implements AutoCloseable {
    static final String QSD = "/usr/bin/qemu-storage-daemon";

    final ProcessHandle daemon;
    final Path output;

    private StorageDaemonUnderTest(ProcessHandle daemon, Path output) {
        this.daemon = daemon;
        this.output = output;
    }

    static boolean isQsd() {
        return "qsd".equals(System.getProperty("vblk.daemon"));
    }

    /** The command for {@code args}: qsd's binary, or this JVM running {@code vblk daemon}. */
    static List<String> command(List<String> args) {
        List<String> cmd = new ArrayList<>();
        if (isQsd()) {
            if (!Files.isExecutable(Path.of(QSD))) {
                fail(QSD + " is not installed: apt-get install -y qemu-system-x86");
            }
            cmd.add(QSD);
        } else {
            cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
            cmd.add("--enable-native-access=ALL-UNNAMED");
            cmd.add("-cp");
            cmd.add(System.getProperty("java.class.path"));
            cmd.add("io.vblk.cli.Main");
            cmd.add("daemon");
        }
        cmd.addAll(args);
        return cmd;
    }

    /** Runs the daemon in the foreground expecting it to fail at start-up; returns exit status and output. */
    static Result runToExit(Path dir, List<String> args) throws Exception {
        Path out = dir.resolve("fail.out");
        Process p = new ProcessBuilder(command(args)).redirectErrorStream(true).redirectOutput(out.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("the daemon did not exit within 120 s: " + args);
        }
        return new Result(p.exitValue(), Files.readString(out, StandardCharsets.UTF_8));
    }

    record Result(int status, String output) {
    }

    static StorageDaemonUnderTest start(Path dir, List<String> args) throws Exception {
        Path pidfile = dir.resolve("daemon.pid");
        Path out = dir.resolve("daemon.out");
        List<String> full = new ArrayList<>(List.of("--daemonize", "--pidfile", pidfile.toString()));
        full.addAll(args);
        List<String> cmd = command(full);
        Process parent = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(out.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
        if (!parent.waitFor(120, TimeUnit.SECONDS)) {
            parent.descendants().forEach(ProcessHandle::destroyForcibly);
            parent.destroyForcibly();
            fail("the daemon did not finish starting within 120 s: " + cmd + "\n" + Files.readString(out));
        }
        if (parent.exitValue() != 0) {
            fail("the daemon failed to start (exit " + parent.exitValue() + "): " + cmd + "\n" + Files.readString(out));
        }
        long pid = Long.parseLong(Files.readString(pidfile).trim());
        Optional<ProcessHandle> h = ProcessHandle.of(pid);
        if (h.isEmpty()) {
            fail("the daemon (pid " + pid + ") is gone right after starting:\n" + Files.readString(out));
        }
        return new StorageDaemonUnderTest(h.get(), out);
    }

    /** SIGTERM and wait for the exit; true if it ended on its own within the bound. */
    boolean terminate() throws IOException {
        daemon.destroy();
        try {
            daemon.onExit().get(60, TimeUnit.SECONDS);
            return true;
        } catch (Exception e) {
            daemon.destroyForcibly();
            return false;
        }
    }

    @Override
    public void close() throws IOException {
        if (daemon.isAlive()) {
            terminate();
        }
    }
}
