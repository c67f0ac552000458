package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * The lines a child process (or socket) writes, gathered by a daemon reader
 * thread; tests wait for a matching line with a bound, and a failure quotes
 * everything seen.
 */
final class LineSource {
    private final String name;
    private final LinkedBlockingQueue<String> pending = new LinkedBlockingQueue<>();
    private final List<String> all = new ArrayList<>();
    private volatile boolean ended;
    private static final String EOF = "\u0000EOF";

    LineSource(String name, InputStream in) {
        this.name = name;
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                String l;
                while ((l = r.readLine()) != null) {
                    synchronized (all) {
                        all.add(l);
                    }
                    pending.add(l);
                }
            } catch (IOException e) {
                synchronized (all) {
                    all.add("(" + name + ": " + e + ")");
                }
            } finally {
                ended = true;
                pending.add(EOF);
            }
        }, name + "-reader");
        t.setDaemon(true);
        t.start();
    }

    /** Waits for the next line matching {@code p} (earlier non-matching lines are consumed). */
    String await(String what, Predicate<String> p, Duration bound) {
        long deadline = System.nanoTime() + bound.toNanos();
        for (;;) {
            long left = deadline - System.nanoTime();
            String l = null;
            if (left > 0) {
                try {
                    l = pending.poll(left, TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            if (l == null) {
                fail(name + ": no line " + what + " within " + bound + "; output so far:\n" + text());
            }
            if (l.equals(EOF)) {
                pending.add(EOF);
                fail(name + ": output ended before a line " + what + "; output:\n" + text());
            }
            if (p.test(l)) {
                return l;
            }
        }
    }

    String await(String contains, Duration bound) {
        return await("containing '" + contains + "'", l -> l.contains(contains), bound);
    }

    String text() {
        synchronized (all) {
            return String.join("\n", all);
        }
    }

    boolean ended() {
        return ended;
    }
}
