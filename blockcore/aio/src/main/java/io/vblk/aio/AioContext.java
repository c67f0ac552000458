package io.vblk.aio;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One event loop: QEMU's {@code AioContext}. This class is its API and owns
 * its lock, timers and lifecycle; the machinery lives in parts split the way
 * QEMU splits it:
 * <ul>
 * <li>{@link BhList}: bottom halves ({@code aio_bh_enqueue}, {@code aio_bh_poll}, util/async.c);</li>
 * <li>{@link AioNotifier}: {@code aio_notify}, {@code notify_me}, {@code notified} and the
 *     context's eventfd (util/async.c);</li>
 * <li>{@link AioPoll}: {@code aio_poll}, dispatch and adaptive polling (util/aio-posix.c);</li>
 * <li>{@link AioHandlers}: {@code aio_set_fd_handler} and the external-client switch (util/aio-posix.c);</li>
 * <li>{@link FdMonEpoll}: the epoll instance (util/fdmon-epoll.c), or in poll mode
 *     {@link FdMonPoll} (util/fdmon-poll.c) until it watches enough fds for epoll
 *     ({@link FdMonOptions}).</li>
 * </ul>
 *
 * <p>Its <em>home thread</em> (an {@link IOThread} or the {@link MainLoop})
 * runs {@link #poll(boolean)} in a loop; only the home thread may block. Any
 * thread may schedule a BH, arm a timer or call {@link #aioNotify()}; a thread
 * holding the lock may also run a non-blocking {@code poll(false)} (a foreign
 * poll, as the main loop does while it waits for an iothread).
 */
public final class AioContext {
    private static final Logger LOG = LoggerFactory.getLogger(AioContext.class);

    /** QEMU's IOThread default {@code poll-max-ns}. */
    public static final long DEFAULT_POLL_MAX_NS = 32_768;

    /** What the home thread is doing, for the watchdog's dump. */
    public enum Phase { NOT_RUNNING, DISPATCHING, POLLING, SLEEPING, STOPPED }

    private final String name;
    private final MainLoop loop;
    private final AioContextLock lock = new AioContextLock();
    private final FdMonOptions fdmonOptions;
    final AioNotifier notifier;
    final BhList bhs;
    private final AioHandlers fdHandlers;
    final TimerList timers;
    private final AioPoll poller;
    final ThreadPool.Completer poolCompleter;

    private volatile Thread home;
    private volatile boolean closed;
    private final List<Runnable> freeHooks = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** Written by the home thread (or a lock holder), read racily. */
    private long callbackFailures;

    AioContext(String name, MainLoop loop, long pollMaxNs, FdMonOptions fdmonOptions) {
        this.name = name;
        this.loop = loop;
        this.fdmonOptions = fdmonOptions;
        this.notifier = new AioNotifier(name, loop.legacy(), loop.visibilityModel());
        FdMon fdmon = fdmonOptions.mode() == FdMonMode.POLL
                ? new FdMonPoll(name, fdmonOptions.upgradeThreshold())
                : new FdMonEpoll(name);
        this.bhs = new BhList(this);
        this.fdHandlers = new AioHandlers(this, fdmon, notifier.fd());
        this.timers = new TimerList(this);
        this.poller = new AioPoll(this, notifier, bhs, fdHandlers, timers, pollMaxNs, loop.visibilityModel());
        this.poolCompleter = new ThreadPool.Completer(this);
    }

    public String name() {
        return name;
    }

    public MainLoop mainLoop() {
        return loop;
    }

    public LegacySwitches legacy() {
        return loop.legacy();
    }

    public AioWait aioWait() {
        return loop.aioWait();
    }

    public AioContextLock lock() {
        return lock;
    }

    /** Acquires the context lock: QEMU's {@code aio_context_acquire}; close the result to release. */
    public AioContextLock.Held acquire() {
        return lock.acquire();
    }

    public boolean isMain() {
        return loop.context() == this;
    }

    /** The context whose home thread is the calling thread, or null: QEMU's {@code qemu_get_current_aio_context}. */
    public static AioContext current() {
        Thread t = Thread.currentThread();
        return t instanceof EventLoopThread ? ((EventLoopThread) t).context() : null;
    }

    /**
     * Whether the calling thread is this context's home: its event-loop
     * thread. A thread that runs no event loop is home to no context — for
     * the main context, QEMU's {@code in_aio_context_home_thread} says "only
     * if it holds the BQL" since 3c18a92dc4, and vblk's BQL is the main
     * loop's thread; such a thread waits by delegation ({@link AioWait}).
     * {@link LegacyBehavior#MAIN_CONTEXT_HOME_WITHOUT_BQL} restores the
     * pre-fix answer: any thread that is no IOThread counts as the main
     * context's home.
     */
    public boolean inHomeThread() {
        Thread t = Thread.currentThread();
        return t == home || (!(t instanceof EventLoopThread) && isMain()
                && legacy().isOn(LegacyBehavior.MAIN_CONTEXT_HOME_WITHOUT_BQL));
    }

    public Thread homeThread() {
        return home;
    }

    void setHomeThread(Thread t) {
        home = t;
        poller.phase = Phase.DISPATCHING;
    }

    // ------------------------------------------------------------------ bottom halves

    /** QEMU's {@code aio_bh_new}: a reusable BH whose callback runs in this context. */
    public BottomHalf bhNew(String name, Runnable callback) {
        return new BottomHalf(this, name, callback, 0);
    }

    /** QEMU's {@code aio_bh_schedule_oneshot}: run {@code callback} once in this context; callable from any thread. */
    public void bhScheduleOneshot(String name, Runnable callback) {
        BottomHalf bh = BottomHalf.oneshot(this, name, callback);
        bhs.enqueue(bh);
        notifier.aioNotify();
    }

    public void bhScheduleOneshot(Runnable callback) {
        bhScheduleOneshot("oneshot", callback);
    }

    /** Runs {@code task} in this context and completes the future there (with its result or exception). */
    public <T> CompletableFuture<T> submit(String what, Callable<T> task) {
        CompletableFuture<T> f = new CompletableFuture<>();
        bhScheduleOneshot(what, () -> {
            try {
                f.complete(task.call());
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        return f;
    }

    public CompletableFuture<Void> run(String what, Runnable task) {
        return submit(what, () -> {
            task.run();
            return null;
        });
    }

    /** Names of pending BHs (a racy walk, for diagnostics), at most {@code max}. */
    public List<String> pendingBottomHalves(int max) {
        return bhs.pendingNames(max);
    }

    // ------------------------------------------------------------------ notification

    /** Wakes the home thread: QEMU's {@code aio_notify} (see {@link AioNotifier}). */
    public void aioNotify() {
        notifier.aioNotify();
    }

    public int notifyMe() {
        return notifier.notifyMe();
    }

    public boolean isNotified() {
        return notifier.isNotified();
    }

    public long eventfdWrites() {
        return notifier.eventfdWrites();
    }

    // ------------------------------------------------------------------ fd handlers and external clients

    /** QEMU's {@code aio_set_fd_handler}: watch an fd. Replaces a handler already set on the same fd. */
    public AioHandler setFdHandler(AioHandler.Builder b) {
        AioContextLock.Held held = inHomeThread() ? null : lock.acquire();
        try {
            return fdHandlers.set(b);
        } finally {
            if (held != null) {
                held.close();
            }
        }
    }

    void removeHandler(AioHandler h) {
        AioContextLock.Held held = inHomeThread() ? null : lock.acquire();
        try {
            fdHandlers.remove(h);
        } finally {
            if (held != null) {
                held.close();
            }
        }
    }

    public List<AioHandler> handlers() {
        return fdHandlers.list();
    }

    /**
     * Stops dispatching external handlers (guest kicks) until the matching
     * {@link #enableExternal()}: QEMU's {@code aio_disable_external}. Nests.
     * Their events are kept: the fds stay readable and are dispatched later.
     */
    public void disableExternal() {
        fdHandlers.disableExternal();
    }

    /** QEMU's {@code aio_enable_external}: the last enable kicks the loop so it re-arms the fds. */
    public void enableExternal() {
        if (fdHandlers.enableExternal()) {
            aioNotify();
        }
    }

    /** The fd monitor the context waits in now: {@link FdMonMode#POLL} until its upgrade, then epoll. */
    public FdMonMode fdMonMode() {
        return fdHandlers.fdmon().mode();
    }

    /** The fd monitor the context was made with. */
    public FdMonOptions fdMonOptions() {
        return fdmonOptions;
    }

    /** How many fds the context watched when its home thread upgraded it from poll to epoll; 0 if it has not. */
    public int fdMonUpgradedAt() {
        return fdHandlers.upgradedAt();
    }

    /**
     * Registered handlers the current fd monitor does not watch, so their
     * events never arrive (bug 008's lost registration); empty when all is well.
     */
    public List<AioHandler> unwatchedHandlers() {
        return fdHandlers.unwatched();
    }

    /**
     * Test seam: the steps of fd-handler registration and of the poll-to-epoll
     * upgrade ({@link FdMonSeam}); null removes it. Runs the same way whatever
     * legacy switch is on.
     */
    public void setFdMonSeam(FdMonSeam seam) {
        fdHandlers.seam = seam;
    }

    public boolean isExternalDisabled() {
        return fdHandlers.externalDisableCount > 0;
    }

    /** Whether the home thread has masked the external fds in epoll (it polled while they were disabled). */
    public boolean isExternalMasked() {
        return fdHandlers.isExternalMasked();
    }

    public int externalDisableCount() {
        return fdHandlers.externalDisableCount;
    }

    // ------------------------------------------------------------------ timers

    /** QEMU's {@code aio_timer_new} on the realtime clock. */
    public AioTimer timerNew(String name, Runnable callback) {
        return new AioTimer(this, name, callback);
    }

    public int armedTimers() {
        return timers.size();
    }

    // ------------------------------------------------------------------ polling

    /**
     * One iteration of the event loop: QEMU's {@code aio_poll} (see {@link AioPoll}).
     * Returns whether progress was made: a BH, handler or timer callback ran
     * (the context's own notifier does not count). Only the home thread may
     * block; a foreign thread may poll non-blocking, holding the context lock
     * while it dispatches.
     */
    public boolean poll(boolean blocking) {
        Thread t = Thread.currentThread();
        if (t == home) {
            return poller.pollHome(blocking);
        }
        if (blocking) {
            throw new IllegalStateException("blocking poll of AioContext '" + name + "' from thread '" + t.getName()
                    + "': only its home thread '" + (home == null ? "(none)" : home.getName()) + "' may block in it");
        }
        return poller.pollForeign();
    }

    /** Upper bound of the adaptive busy-poll window; 0 disables polling (QEMU's {@code poll-max-ns}). */
    public void setPollMaxNs(long ns) {
        if (ns < 0) {
            throw new IllegalArgumentException("poll-max-ns must be >= 0, got " + ns);
        }
        poller.setPollMaxNs(ns);
    }

    public long pollMaxNs() {
        return poller.pollMaxNs();
    }

    /** The current adaptive window (racy read, for statistics). */
    public long pollNs() {
        return poller.pollNs();
    }

    /**
     * Test seam: called by the home thread after it has announced itself in
     * notify_me, re-checked {@code notified} and released the context lock,
     * immediately before it sleeps in epoll_wait. Lets a test hold the poller at that exact point to replay
     * a race step by step; it runs the same way whatever legacy switch is on.
     */
    public void setSleepHook(Runnable hook) {
        poller.sleepHook = hook;
    }

    /**
     * Test seam: called by the home thread at the start of each poll, before
     * it takes the context lock or looks at its BHs and fds.
     */
    public void setPollStartHook(Runnable hook) {
        poller.pollStartHook = hook;
    }

    // ------------------------------------------------------------------ callbacks

    /**
     * Runs one callback of this loop. An exception is logged with the context
     * and callback names and counted; it never unwinds the event loop, so the
     * remaining BHs of a batch still run.
     */
    void runCallback(Runnable cb, String what) {
        try {
            cb.run();
        } catch (ClosedContextException e) {
            throw e;
        } catch (VirtualMachineError e) {
            throw e;
        } catch (Throwable e) {
            logFailure(what, e);
        }
    }

    void logFailure(String what, Throwable e) {
        callbackFailures++;
        LOG.error("AioContext '{}': callback '{}' threw", name, what, e);
        loop.recordFailure(name, what, e);
    }

    void checkOpen() {
        if (closed) {
            throw new ClosedContextException(name);
        }
    }

    // ------------------------------------------------------------------ lifecycle and diagnostics

    public boolean isClosed() {
        return closed;
    }

    /** Wakes a sleeping home thread unconditionally so it sees {@link #isClosed()} (and unwinds). */
    void markClosed() {
        closed = true;
        notifier.wakeUnconditionally();
    }

    /**
     * Runs {@code hook} when the context frees its resources, after its last
     * poll: per-context state another layer keeps (the block layer's io_uring,
     * which QEMU's {@code aio_ctx_finalize} frees with {@code luring_cleanup}).
     * Closing the returned handle unregisters the hook (the state went first).
     */
    public AutoCloseable addFreeHook(Runnable hook) {
        freeHooks.add(hook);
        return () -> freeHooks.remove(hook);
    }

    /** Frees the epoll instance and notifier; only once no thread can poll any more. */
    void freeResources() {
        closed = true;
        poller.phase = Phase.STOPPED;
        for (Runnable h : freeHooks) {
            try {
                h.run();
            } catch (RuntimeException e) {
                LOG.error("AioContext '{}': free hook failed", name, e);
            }
        }
        freeHooks.clear();
        fdHandlers.deleteAll(); // and frees the fd monitor
        notifier.close();
    }

    public Phase phase() {
        return poller.phase;
    }

    public long pollCount() {
        return poller.polls;
    }

    public long callbackFailures() {
        return callbackFailures;
    }

    /** A description of the loop's state for the watchdog's dump. */
    public String describe() {
        StringBuilder sb = new StringBuilder();
        Thread h = home;
        sb.append("AioContext '").append(name).append("'");
        if (h != null) {
            sb.append(" thread '").append(h.getName()).append("' ").append(h.getState());
        } else {
            sb.append(" (no home thread)");
        }
        sb.append('\n');
        sb.append("  phase=").append(phase())
                .append(" notify_me=").append(notifyMe())
                .append(" notified=").append(isNotified())
                .append(" external_disable_cnt=").append(externalDisableCount())
                .append(" poll_ns=").append(pollNs()).append(" poll_max_ns=").append(pollMaxNs())
                .append(" polls=").append(pollCount()).append(" sleeps=").append(poller.sleeps)
                .append(" callback_failures=").append(callbackFailures).append('\n');
        Thread owner = lock.owner();
        sb.append("  lock: ").append(owner == null ? "free" : "held by '" + owner.getName() + "' depth " + lock.depth())
                .append(lock.hasWaiters() ? " (threads waiting)" : "").append('\n');
        List<String> bhList = pendingBottomHalves(32);
        sb.append("  pending BHs (").append(bhList.size()).append("): ").append(bhList).append('\n');
        sb.append("  handlers: ").append(handlers()).append('\n');
        int upgradedAt = fdMonUpgradedAt();
        sb.append("  fd monitor: ").append(fdMonMode().key())
                .append(upgradedAt > 0 ? " (upgraded from poll at " + upgradedAt + " fds)"
                        : fdmonOptions.mode() == FdMonMode.POLL ? " (epoll from " + fdmonOptions.upgradeThreshold()
                        + " fds)" : "")
                .append('\n');
        List<AioHandler> unwatched = unwatchedHandlers();
        if (!unwatched.isEmpty()) {
            sb.append("  NOT WATCHED by the ").append(fdMonMode().key())
                    .append(" fd monitor (their events never arrive): ").append(unwatched).append('\n');
        }
        sb.append("  armed timers: ").append(timers.size()).append('\n');
        if (h != null) {
            for (StackTraceElement e : h.getStackTrace()) {
                sb.append("    at ").append(e).append('\n');
            }
        }
        return sb.toString();
    }

    @Override
    public String toString() {
        return "AioContext(" + name + ")";
    }
}
