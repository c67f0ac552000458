package io.vblk.aio;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The main-loop thread and everything the event loops of one machine share:
 * the main {@link AioContext} (QEMU's {@code qemu_aio_context}), the
 * {@link IOThread}s made from it, the {@link AioWait} registry, the
 * {@link ThreadPool}, the {@link LegacySwitches}, a log of callback failures
 * and the diagnostic sources the watchdog dumps.
 */
public final class MainLoop implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(MainLoop.class);
    private static final long STOP_BOUND_MS = 2_000;
    private static final long JOIN_BOUND_MS = 10_000;

    private final String name;
    private final LegacySwitches legacy;
    private final VisibilityModel visibility;
    private final AioWait aioWait;
    private final AioContext ctx;
    private final EventLoopThread thread;
    private final ThreadPool threadPool;
    private final List<IOThread> iothreads = new CopyOnWriteArrayList<>();
    private final Map<Long, Diagnostic> diagnostics = new ConcurrentHashMap<>();
    private final AtomicLong diagnosticIds = new AtomicLong();
    private final List<String> failures = new CopyOnWriteArrayList<>();
    private volatile boolean closed;

    public MainLoop() {
        this("main-loop", new LegacySwitches());
    }

    public MainLoop(LegacySwitches legacy) {
        this("main-loop", legacy);
    }

    public MainLoop(String name, LegacySwitches legacy) {
        this(name, legacy, null);
    }

    /**
     * A main loop whose contexts and wait registry run under {@code visibility}
     * (null: the JVM's own ordering, as everywhere outside the memory-ordering
     * scenarios of bugs 006 and 007).
     */
    public MainLoop(String name, LegacySwitches legacy, VisibilityModel visibility) {
        this.name = name;
        this.legacy = legacy;
        this.visibility = visibility;
        this.aioWait = new AioWait(legacy, visibility);
        this.ctx = new AioContext(name, this, 0, FdMonOptions.fromSystemProperties());
        aioWait.bind(ctx);
        this.threadPool = new ThreadPool(name + "-worker", 16);
        this.thread = new EventLoopThread(ctx);
        thread.start();
    }

    public String name() {
        return name;
    }

    /** The main context: QEMU's {@code qemu_get_aio_context()}. */
    public AioContext context() {
        return ctx;
    }

    public Thread thread() {
        return thread;
    }

    public LegacySwitches legacy() {
        return legacy;
    }

    public AioWait aioWait() {
        return aioWait;
    }

    /** The store-buffer model this machine runs under, or null (the JVM's ordering). */
    public VisibilityModel visibilityModel() {
        return visibility;
    }

    public ThreadPool threadPool() {
        return threadPool;
    }

    public IOThread newIOThread(String name) {
        return newIOThread(name, AioContext.DEFAULT_POLL_MAX_NS);
    }

    /**
     * Starts an IOThread; {@code pollMaxNs} bounds its adaptive busy-polling
     * (0 = never poll). Its fd monitor is the system properties' choice
     * ({@link FdMonOptions#fromSystemProperties()}: epoll unless told otherwise).
     */
    public IOThread newIOThread(String name, long pollMaxNs) {
        return newIOThread(name, pollMaxNs, FdMonOptions.fromSystemProperties());
    }

    /**
     * Starts an IOThread whose context waits in the fd monitor {@code fdmon}
     * says: epoll from the start, or ppoll upgraded to epoll at a threshold
     * (QEMU's {@code -object iothread} has no such option; its contexts always
     * start in poll mode).
     */
    public IOThread newIOThread(String name, long pollMaxNs, FdMonOptions fdmon) {
        if (closed) {
            throw new IllegalStateException("main loop '" + this.name + "' is closed");
        }
        for (IOThread t : iothreads) {
            if (t.name().equals(name)) {
                throw new IllegalArgumentException("an IOThread named '" + name + "' already exists");
            }
        }
        IOThread t = new IOThread(this, name, pollMaxNs, fdmon);
        iothreads.add(t);
        return t;
    }

    public List<IOThread> iothreads() {
        return List.copyOf(iothreads);
    }

    void forget(IOThread t) {
        iothreads.remove(t);
    }

    /** Runs {@code task} in the main loop; the future completes there. */
    public <T> CompletableFuture<T> submit(String what, Callable<T> task) {
        return ctx.submit(what, task);
    }

    public CompletableFuture<Void> run(String what, Runnable task) {
        return ctx.run(what, task);
    }

    /** Every context of the machine: the main context first, then each IOThread's. */
    public List<AioContext> contexts() {
        List<AioContext> l = new ArrayList<>();
        l.add(ctx);
        for (IOThread t : iothreads) {
            l.add(t.context());
        }
        return l;
    }

    void recordFailure(String where, String what, Throwable t) {
        failures.add(where + ": " + what + ": " + t);
    }

    /** Exceptions event-loop callbacks threw (each was logged); tests assert this stays empty. */
    public List<String> failures() {
        return List.copyOf(failures);
    }

    /** Adds a source of state for the watchdog's dump (in-flight counts, queue state); close to remove. */
    public AutoCloseable addDiagnostics(String title, Supplier<String> source) {
        long id = diagnosticIds.incrementAndGet();
        diagnostics.put(id, new Diagnostic(title, source));
        return () -> diagnostics.remove(id);
    }

    /** The state of every event loop and diagnostic source, for a hang report. */
    public String dump() {
        StringBuilder sb = new StringBuilder();
        sb.append("=== vblk event-loop dump at ").append(Instant.now()).append(" (legacy switches: ")
                .append(legacy).append(") ===\n");
        for (AioContext c : contexts()) {
            sb.append(c.describe());
        }
        sb.append(threadPool.describe());
        sb.append("aio_wait: num_waiters=").append(aioWait.waiters()).append('\n');
        if (visibility != null) {
            sb.append(visibility.describe());
        }
        List<Diagnostic> ds = new ArrayList<>(diagnostics.values());
        for (Diagnostic d : ds) {
            sb.append("--- ").append(d.title).append(" ---\n");
            try {
                sb.append(d.source.get()).append('\n');
            } catch (RuntimeException e) {
                sb.append("(diagnostic source failed: ").append(e).append(")\n");
            }
        }
        sb.append("=== end of dump ===\n");
        return sb.toString();
    }

    public Watchdog watchdog(Duration deadline) {
        return new Watchdog(this, deadline);
    }

    /** Joins with a bound; false if the thread is still alive (it is stuck). */
    static boolean joinBounded(Thread t, long millis) {
        if (t == Thread.currentThread()) {
            return false;
        }
        try {
            t.join(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        return !t.isAlive();
    }

    /**
     * Stops every loop, then frees the contexts and the worker pool. Loops
     * that do not stop in time are stuck (a test provoked a hang): all
     * contexts are then closed under them together, since a stuck main loop
     * may hold the lock a stuck iothread waits for, and each poll unwinds.
     */
    @Override
    public void close() {
        List<IOThread> its;
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            its = List.copyOf(iothreads);
        }
        for (IOThread t : its) {
            t.requestStop();
        }
        thread.requestStop();
        boolean allStopped = true;
        for (IOThread t : its) {
            allStopped &= joinBounded(t.thread(), STOP_BOUND_MS);
        }
        allStopped &= joinBounded(thread, STOP_BOUND_MS);
        if (!allStopped) {
            LOG.warn("main loop '{}': event loops did not stop; closing contexts under them", name);
            for (AioContext c : contexts()) {
                c.markClosed();
            }
        }
        for (IOThread t : its) {
            t.close();
        }
        if (joinBounded(thread, JOIN_BOUND_MS)) {
            ctx.freeResources();
        } else {
            LOG.warn("main loop '{}' did not stop; leaving it:\n{}", name, ctx.describe());
        }
        threadPool.shutdown();
    }

    private static final class Diagnostic {
        final String title;
        final Supplier<String> source;

        Diagnostic(String title, Supplier<String> source) {
            this.title = title;
            this.source = source;
        }
    }
}
