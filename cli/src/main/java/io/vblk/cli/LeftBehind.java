package io.vblk.cli;

import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ForkJoinWorkerThread;
import java.util.regex.Pattern;

/**
 * What a scenario run left behind: the machine's threads that are still
 * alive after it returned — event-loop threads (a {@code MainLoop}'s or an
 * {@code IOThread}'s, QEMU's {@code main_loop_wait} / {@code iothread_run}),
 * vCPU threads, thread-pool workers — and the contexts it did not free,
 * seen by their kernel objects: each {@code AioContext} owns one epoll
 * instance (its fd monitor, QEMU's {@code fdmon-epoll}) and, when it uses
 * one, an io_uring; and the eventfds ({@code EventNotifier}s: a context's
 * wake-up, a virtio-pci function's ioeventfds, irqfds and INTx notifier, a
 * vhost-user ring's kick/call) that whoever made them must close when it is
 * torn down. A
 * {@link #take() snapshot} before the run, {@link #since} after it: threads
 * that are finishing get a bounded wait; what is still there is named.
 */
final class LeftBehind {
    /** The class of every event-loop thread (package-private in io.vblk.aio, so named here; a test pins it). */
    static final String EVENT_LOOP_THREAD = "io.vblk.aio.EventLoopThread";
    private static final Pattern VCPU = Pattern.compile("vcpu\\d+");
    private static final Pattern WORKER = Pattern.compile(".+-worker-\\d+");
    private static final Path FDS = Paths.get("/proc/self/fd");
    private static final String[] KERNEL_OBJECTS = {"eventpoll", "io_uring", "eventfd"};

    private final Set<Thread> threads;
    private final Map<String, Integer> kernelObjects;

    private LeftBehind(Set<Thread> threads, Map<String, Integer> kernelObjects) {
        this.threads = threads;
        this.kernelObjects = kernelObjects;
    }

    /** The machine threads and event-loop kernel objects (epoll, io_uring, eventfd) alive now. */
    static LeftBehind take() {
        Set<Thread> ts = Collections.newSetFromMap(new IdentityHashMap<>());
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (kind(t) != null) {
                ts.add(t);
            }
        }
        return new LeftBehind(ts, kernelObjects());
    }

    /** What a thread is to a machine ("event loop", "vCPU", "thread-pool worker"), or null if none of them. */
    static String kind(Thread t) {
        if (t.getClass().getName().equals(EVENT_LOOP_THREAD)) {
            return "event loop";
        }
        if (VCPU.matcher(t.getName()).matches()) {
            return "vCPU";
        }
        if (WORKER.matcher(t.getName()).matches() && !(t instanceof ForkJoinWorkerThread)) {
            // a ThreadPool's worker ("main-loop-worker-0"), not the JDK's common pool ("...commonPool-worker-1")
            return "thread-pool worker";
        }
        return null;
    }

    /**
     * What appeared since {@code before} and is still there after waiting up
     * to {@code bound} for threads that are ending: one line per thread or
     * kind of kernel object; empty if the run left nothing behind.
     */
    List<String> since(LeftBehind before, Duration bound) {
        long deadline = System.nanoTime() + bound.toNanos();
        List<String> left = new ArrayList<>();
        for (Thread t : threads) {
            if (before.threads.contains(t)) {
                continue;
            }
            long waitMs = Math.max(0, (deadline - System.nanoTime()) / 1_000_000);
            if (t.isAlive() && !join(t, waitMs)) {
                left.add("thread '" + t.getName() + "' (" + kind(t) + ", " + t.getState() + ")");
            }
        }
        Map<String, Integer> now = kernelObjects();
        for (String k : KERNEL_OBJECTS) {
            int grew = now.getOrDefault(k, 0) - before.kernelObjects.getOrDefault(k, 0);
            if (grew > 0) {
                left.add(grew + " " + k + " descriptor(s) not closed (" + describe(k) + ")");
            }
        }
        return left;
    }

    private static String describe(String kernelObject) {
        return switch (kernelObject) {
            case "eventpoll" -> "a context's epoll instance: the context was not freed";
            case "io_uring" -> "a context's io_uring: the context was not freed";
            default -> "an EventNotifier (ioeventfd, irqfd, a context's wake-up) was not closed";
        };
    }

    private static boolean join(Thread t, long millis) {
        try {
            t.join(Math.max(1, millis));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return !t.isAlive();
    }

    /** Counts this process's epoll, io_uring and eventfd descriptors; empty where /proc is not there. */
    private static Map<String, Integer> kernelObjects() {
        Map<String, Integer> counts = new TreeMap<>();
        if (!Files.isDirectory(FDS)) {
            return counts;
        }
        try (DirectoryStream<Path> fds = Files.newDirectoryStream(FDS)) {
            for (Path fd : fds) {
                String target;
                try {
                    target = Files.readSymbolicLink(fd).toString();
                } catch (IOException | UnsupportedOperationException e) {
                    continue; // closed while listing (the directory stream's own descriptor, among others)
                }
                for (String k : KERNEL_OBJECTS) {
                    if (target.equals("anon_inode:[" + k + "]")) {
                        counts.merge(k, 1, Integer::sum);
                    }
                }
            }
        } catch (IOException e) {
            return counts;
        }
        return counts;
    }
}
