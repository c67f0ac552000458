package io.vblk.tests.linux;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.stream.Stream;

import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.AfterTestExecutionCallback;
import org.junit.jupiter.api.extension.BeforeEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;

/**
 * Each Linux-guest test's log directory, {@code
 * target/linux-guest-logs/CLASS.METHOD/} (a parameterized test's
 * invocation: {@code CLASS.METHOD-N-ARGS/}): emptied when the test starts, then
 * filled as the test runs — QEMU's output, the guest console, the command
 * port's transcript, QMP transcripts, back-end logs — so it is on disk
 * whatever happens. A failed test also gets {@code FAILED.txt} (its
 * exception) and its directory is named on stderr. Also provides a short
 * directory for UNIX sockets (their paths are limited to 107 bytes),
 * removed after the test. Register with {@code @RegisterExtension}.
 */
public final class GuestLogs implements BeforeEachCallback, AfterTestExecutionCallback, AfterEachCallback {
    private Path dir;
    private Path sockets;
    private long startNanos;

    @Override
    public void beforeEach(ExtensionContext ctx) throws IOException {
        String name = ctx.getRequiredTestClass().getSimpleName() + "." + ctx.getRequiredTestMethod().getName();
        if (ctx.getDisplayName().startsWith("[")) {
            // one invocation of a parameterized test ("[1] VBLK"): its own directory, so the next keeps its logs
            name += "-" + ctx.getDisplayName().replaceAll("[^A-Za-z0-9]+", "-").replaceAll("^-|-$", "");
        }
        dir = GuestEnvironment.moduleDir().resolve("target/linux-guest-logs").resolve(name);
        deleteTree(dir);
        Files.createDirectories(dir);
        sockets = Files.createTempDirectory("vblk-lg");
        startNanos = System.nanoTime();
    }

    @Override
    public void afterTestExecution(ExtensionContext ctx) throws IOException {
        double seconds = (System.nanoTime() - startNanos) / 1e9;
        note(String.format("test time: %.1f s%n", seconds));
        if (ctx.getExecutionException().isPresent()) {
            StringWriter sw = new StringWriter();
            ctx.getExecutionException().get().printStackTrace(new PrintWriter(sw));
            Files.writeString(dir.resolve("FAILED.txt"), sw.toString(), StandardCharsets.UTF_8);
            System.err.println("Linux-guest test " + ctx.getDisplayName() + " failed; its logs are in " + dir);
        }
    }

    @Override
    public void afterEach(ExtensionContext ctx) throws IOException {
        deleteTree(sockets);
    }

    /** This test's log directory. */
    public Path dir() {
        return dir;
    }

    /** A short directory for this test's UNIX sockets. */
    public Path sockets() {
        return sockets;
    }

    /** Appends a line to the test's {@code notes.txt} (measurements a later reader wants: sizes, times). */
    public void note(String text) throws IOException {
        Files.writeString(dir.resolve("notes.txt"), text.endsWith("\n") ? text : text + "\n", StandardCharsets.UTF_8,
                StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    static void deleteTree(Path p) throws IOException {
        if (p == null || !Files.exists(p)) {
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(q);
            }
        }
    }
}
