package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Predicate;

/**
 * The output of a child process (QEMU's stderr, a back-end's log), read by a
 * daemon thread, written line by line to a log file as it comes (so a
 * failure leaves it on disk) and kept in memory, so a test can wait — with
 * a deadline, never a sleep — for a line the process prints.
 */
public final class ProcessLog {
    private final String name;
    private final Path file;
    private final List<String> lines = new ArrayList<>();
    private boolean ended;

    private ProcessLog(String name, Path file) {
        this.name = name;
        this.file = file;
    }

    /** Starts reading {@code in} (appending to {@code file}) until it ends. */
    static ProcessLog tee(String name, InputStream in, Path file) throws IOException {
        ProcessLog log = new ProcessLog(name, file);
        Writer w = Files.newBufferedWriter(file, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
        Thread t = new Thread(() -> log.pump(in, w), name + "-log");
        t.setDaemon(true);
        t.start();
        return log;
    }

    private void pump(InputStream in, Writer w) {
        try (w; BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String l;
            while ((l = r.readLine()) != null) {
                w.write(l);
                w.write('\n');
                w.flush();
                synchronized (this) {
                    lines.add(l);
                    notifyAll();
                }
            }
        } catch (IOException e) {
            synchronized (this) {
                lines.add("(" + name + ": " + e + ")");
            }
        } finally {
            synchronized (this) {
                ended = true;
                notifyAll();
            }
        }
    }

    /** Waits until a line (any line seen so far counts) satisfies {@code p}; returns it. */
    public synchronized String await(String what, Predicate<String> p, Duration bound) throws InterruptedException {
        return awaitFrom(0, what, p, bound);
    }

    /** Waits for a line containing {@code text}. */
    public String await(String text, Duration bound) throws InterruptedException {
        return await("containing '" + text + "'", l -> l.contains(text), bound);
    }

    /** As {@link #await}, but only lines from index {@code from} on count (see {@link #size()}). */
    public synchronized String awaitFrom(int from, String what, Predicate<String> p, Duration bound)
            throws InterruptedException {
        long deadline = System.nanoTime() + bound.toNanos();
        for (int i = from;;) {
            for (; i < lines.size(); i++) {
                if (p.test(lines.get(i))) {
                    return lines.get(i);
                }
            }
            if (ended) {
                fail(name + ": output ended before a line " + what + "; see " + file + ":\n" + tail(40));
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                fail(name + ": no line " + what + " within " + bound + "; see " + file + ":\n" + tail(40));
            }
            wait(Math.max(1, left / 1_000_000));
        }
    }

    /** How many lines were read so far: a mark for {@link #awaitFrom}. */
    public synchronized int size() {
        return lines.size();
    }

    /** Whether any line seen so far satisfies {@code p}. */
    public synchronized boolean any(Predicate<String> p) {
        return lines.stream().anyMatch(p);
    }

    /** The last {@code n} lines, for failure messages. */
    public synchronized String tail(int n) {
        return String.join("\n", lines.subList(Math.max(0, lines.size() - n), lines.size()));
    }

    public Path file() {
        return file;
    }
}
