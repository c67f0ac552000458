package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.file.FileSystems;
import java.nio.file.Path;
import java.nio.file.StandardWatchEventKinds;
import java.nio.file.WatchKey;
import java.nio.file.WatchService;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * QEMU's {@code -serial file:LOG}: waits, with a bound, until the log holds
 * a marker a given number of times. Woken by inotify (a WatchService on the
 * directory); each wake-up, and each slice without one, re-reads the file.
 */
final class SerialLog {
    private static final Duration SLICE = Duration.ofMillis(250);
    private final Path file;

    SerialLog(Path file) {
        this.file = file;
    }

    Path path() {
        return file;
    }

    int count(String marker) {
        String s = Tools.read(file);
        int n = 0;
        for (int i = s.indexOf(marker); i >= 0; i = s.indexOf(marker, i + marker.length())) {
            n++;
        }
        return n;
    }

    /** Waits until {@code marker} was printed {@code times} times; the failure quotes the log and {@code context}. */
    void await(String marker, int times, Duration bound, Supplier<String> context) throws IOException {
        long deadline = System.nanoTime() + bound.toNanos();
        try (WatchService ws = FileSystems.getDefault().newWatchService()) {
            file.getParent().register(ws, StandardWatchEventKinds.ENTRY_CREATE, StandardWatchEventKinds.ENTRY_MODIFY);
            while (count(marker) < times) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    fail("serial log " + file + ": '" + marker + "' seen " + count(marker) + " time(s), wanted " + times
                            + " within " + bound + ".\n--- serial log ---\n" + Tools.read(file) + "\n--- context ---\n"
                            + context.get());
                }
                WatchKey k;
                try {
                    k = ws.poll(Math.min(left, SLICE.toNanos()), TimeUnit.NANOSECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted", e);
                }
                if (k != null) {
                    k.pollEvents();
                    k.reset();
                }
            }
        }
    }
}
