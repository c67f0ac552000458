package io.vblk.bench.aio;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * The kernel's scheduling state of one thread of this JVM, read from
 * {@code /proc/self/task/<tid>/stat}: lets a benchmark check, outside
 * its timed section, that a peer thread is really blocked in the kernel
 * (state {@code S}, on a wait queue) rather than only about to block.
 * The thread is found by its name ({@code /proc/self/task/<tid>/comm}, which
 * Java sets from {@link Thread#getName()}), so it must be unique. The stat
 * file stays open and is re-read from offset 0 into a reused buffer: no
 * allocation per check. It also counts how often the thread really blocked
 * ({@link #voluntarySwitches()}), which tells whether a wake-up benchmark
 * woke a descheduled thread or caught it still on its way into the kernel.
 */
final class KernelThreadState implements AutoCloseable {
    private final Path task;
    private final RandomAccessFile stat;
    private final byte[] buf = new byte[512];

    private KernelThreadState(Path task) throws IOException {
        this.task = task;
        this.stat = new RandomAccessFile(task.resolve("stat").toFile(), "r");
    }

    /** Finds the live thread named {@code name} (at most 15 characters, the kernel's limit). */
    static KernelThreadState of(String name) {
        try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
            for (Path task : (Iterable<Path>) tasks::iterator) {
                String comm = Files.readString(task.resolve("comm"), StandardCharsets.US_ASCII).strip();
                if (comm.equals(name)) {
                    return new KernelThreadState(task);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new IllegalStateException("no thread named '" + name + "' in /proc/self/task");
    }

    /** Whether the thread is in interruptible sleep (blocked in a system call such as epoll_wait). */
    boolean isBlocked() {
        return state() == 'S';
    }

    /** The state letter of {@code /proc/<tid>/stat}: R, S, D, ... */
    char state() {
        try {
            stat.seek(0);
            int n = stat.read(buf);
            // "tid (comm) S ...": the state follows the last ')' and a space
            for (int i = n - 1; i > 0; i--) {
                if (buf[i] == ')') {
                    return (char) buf[i + 2];
                }
            }
            throw new IllegalStateException("unexpected /proc stat line");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * How many times the thread has blocked so far ({@code voluntary_ctxt_switches}
     * of {@code /proc/<tid>/status}). Allocates; for iteration boundaries only.
     */
    long voluntarySwitches() {
        try {
            for (String line : Files.readAllLines(task.resolve("status"), StandardCharsets.US_ASCII)) {
                if (line.startsWith("voluntary_ctxt_switches:")) {
                    return Long.parseLong(line.substring(line.indexOf(':') + 1).strip());
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new IllegalStateException("no voluntary_ctxt_switches in " + task + "/status");
    }

    @Override
    public void close() {
        try {
            stat.close();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
