package io.vblk.aio;

/**
 * One iteration of an {@link AioContext}'s event loop and its adaptive busy
 * polling: QEMU's {@code aio_poll} with {@code run_poll_handlers},
 * {@code poll_set_started}, {@code adjust_polling_time} and the dispatch of
 * ready handlers (util/aio-posix.c). It runs the context's bottom halves
 * ({@link BhList}), fd handlers ({@link AioHandlers}) and timers, sleeping in
 * the fd monitor ({@link FdMonEpoll}, or {@link FdMonPoll} until the context
 * is upgraded) when there is nothing to do; the wake-up protocol it follows
 * is {@link AioNotifier}'s.
 *
 * <p>Before it sleeps the home thread may busy-poll pollable handlers for an
 * adaptive window (QEMU's {@code poll-max-ns}): it grows while sleeps are
 * short and drops to zero after one that outlasts the maximum.
 */
final class AioPoll {
    /** QEMU's default initial poll window once polling starts growing. */
    private static final long POLL_START_NS = 4_000;

    private final AioContext ctx;
    private final AioContextLock lock;
    private final AioNotifier notifier;
    private final BhList bhs;
    private final AioHandlers fdHandlers;
    private final TimerList timers;
    /** Null unless a memory-ordering scenario runs: then epoll_wait drains the thread's store buffer. */
    private final VisibilityModel visibility;
    private final FdMonEvents homeEvents = new FdMonEvents();
    private final FdMonEvents foreignEvents = new FdMonEvents();
    /** How many pollHome calls of the home thread are under way (more than one: a nested event loop). */
    private int homeDepth;

    private long pollNs;
    private volatile long pollMaxNs;
    private boolean pollStarted;
    private boolean anyPollReady;

    volatile AioContext.Phase phase = AioContext.Phase.NOT_RUNNING;
    volatile Runnable sleepHook;
    volatile Runnable pollStartHook;

    // statistics, written by the home thread (or a lock holder), read racily
    long polls;
    long sleeps;
    private long pollSuccesses;

    AioPoll(AioContext ctx, AioNotifier notifier, BhList bhs, AioHandlers fdHandlers, TimerList timers,
            long pollMaxNs, VisibilityModel visibility) {
        this.ctx = ctx;
        this.lock = ctx.lock();
        this.notifier = notifier;
        this.bhs = bhs;
        this.fdHandlers = fdHandlers;
        this.timers = timers;
        this.pollMaxNs = pollMaxNs;
        this.visibility = visibility;
    }

    /**
     * epoll_wait or ppoll: a system call, so under the visibility model it
     * drains the caller's store buffer. In poll mode the home thread first
     * tries the upgrade to epoll, as QEMU's {@code fdmon_poll_wait} does, but
     * not from a nested event loop (QEMU: the list lock cannot be taken while
     * an outer {@code aio_poll} walks the handlers).
     */
    private int fdmonWait(FdMonEvents events, long timeoutNs, boolean home) {
        if (visibility != null) {
            visibility.syscall();
        }
        if (home && homeDepth == 1) {
            fdHandlers.tryEpollUpgrade();
        }
        return fdHandlers.fdmon().wait(events, timeoutNs);
    }

    void setPollMaxNs(long ns) {
        pollMaxNs = ns;
    }

    long pollMaxNs() {
        return pollMaxNs;
    }

    /** The current adaptive window (racy read, for statistics). */
    long pollNs() {
        return pollNs;
    }

    /** {@code aio_poll} in the home thread, the only one that may block. */
    boolean pollHome(boolean blocking) {
        Runnable startHook = pollStartHook;
        if (startHook != null) {
            startHook.run();
        }
        lock.acquire();
        homeDepth++;
        // Bug 005's era: aio_poll announced a blocking poll in notify_me first of all, and read its BHs and
        // timers after that; nothing re-checked 'notified'.
        boolean announcedFirst = blocking && notifier.isEraOfBug005();
        if (announcedFirst) {
            notifier.raiseNotifyMe();
        }
        try {
            ctx.checkOpen();
            polls++;
            fdHandlers.updateExternalArming();
            long timeout = blocking ? computeTimeoutNs() : 0;
            long start = 0;
            boolean progress = false;
            long maxNs = pollMaxNs;
            if (blocking && maxNs > 0) {
                start = System.nanoTime();
            }
            if (timeout != 0 && pollNs > 0 && maxNs > 0) {
                phase = AioContext.Phase.POLLING;
                setPollStarted(true);
                if (runPollHandlers(timeout < 0 ? pollNs : Math.min(pollNs, timeout))) {
                    progress = true;
                    timeout = 0;
                    pollSuccesses++;
                } else if (notifier.isNotified()) {
                    timeout = 0;
                }
            }
            if (timeout != 0 && pollStarted && setPollStarted(false)) {
                progress = true;
                timeout = 0;
            }
            boolean useNotifyMe = announcedFirst || timeout != 0;
            if (!announcedFirst && useNotifyMe && !notifier.enterBlockingWait()) {
                timeout = 0;
            }
            int n = 0;
            if (timeout != 0) {
                phase = AioContext.Phase.SLEEPING;
                sleeps++;
                int held = lock.holdCount();
                for (int i = 0; i < held; i++) {
                    lock.release();
                }
                try {
                    Runnable hook = sleepHook;
                    if (hook != null) {
                        hook.run();
                    }
                    n = fdmonWait(homeEvents, timeout, true);
                } finally {
                    for (int i = 0; i < held; i++) {
                        lock.acquire();
                    }
                }
            } else if (fdHandlers.pollDisableCount > 0 || !pollStarted) {
                n = fdmonWait(homeEvents, 0, true);
            } else if (!progress) {
                // QEMU: "if polling is allowed, non-blocking aio_poll does not need the system
                // call --- a single round of run_poll_handlers_once suffices". Every armed handler
                // is pollable and polling has begun (their notifications are off), so a check of
                // each replaces epoll_wait(0): a BH round costs no syscall.
                runPollHandlersOnce();
            }
            if (phase != AioContext.Phase.DISPATCHING) {
                phase = AioContext.Phase.DISPATCHING;
            }
            if (useNotifyMe) {
                notifier.leaveBlockingWait();
            }
            ctx.checkOpen();
            boolean notifierFired = homeEvents.contains(n, AioNotifier.EPOLL_DATA);
            // Seed 004: accept only after a blocking wait. aio_notify writes the eventfd
            // only for a poller that announced itself in notify_me, and only a blocking
            // home-thread poll announces itself; accepting anywhere else consumes a
            // wake-up meant for that sleeper.
            if (blocking || ctx.legacy().isOn(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL)) {
                notifier.aioNotifyAccept(notifierFired);
            }
            if (start != 0) {
                adjustPollTime(System.nanoTime() - start, maxNs);
            }
            progress |= bhs.poll();
            progress |= dispatchHandlers(homeEvents, n);
            progress |= timers.run();
            return progress;
        } finally {
            homeDepth--;
            lock.release();
            if (visibility != null) {
                visibility.endOfPoll();
            }
        }
    }

    /** A non-blocking {@code aio_poll} by a thread other than the home thread, under the context lock. */
    boolean pollForeign() {
        lock.acquire();
        try {
            if (ctx.isClosed()) {
                return false;
            }
            int n = fdmonWait(foreignEvents, 0, false);
            boolean notifierFired = foreignEvents.contains(n, AioNotifier.EPOLL_DATA);
            if (ctx.legacy().isOn(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL)) {
                // The pre-fix aio_poll accepted unconditionally: a non-blocking
                // poll from another thread consumes the eventfd the sleeping home
                // thread was about to be woken by.
                notifier.aioNotifyAccept(notifierFired);
            }
            boolean progress = bhs.poll();
            progress |= dispatchHandlers(foreignEvents, n);
            progress |= timers.run();
            return progress;
        } finally {
            lock.release();
            if (visibility != null) {
                visibility.endOfPoll();
            }
        }
    }

    /** QEMU's {@code aio_compute_timeout}: 0 while a BH is pending, else until the next timer (-1: none). */
    private long computeTimeoutNs() {
        if (bhs.hasPending()) {
            return 0;
        }
        return timers.timeoutNs(System.nanoTime());
    }

    /**
     * QEMU's {@code poll_set_started}: tell pollable handlers polling begins or
     * ends. Begin and end are paired per handler (a handler masked or removed
     * meanwhile still gets its end), and after ending, each is polled once more
     * in case new work raced with re-enabling its notifications.
     */
    private boolean setPollStarted(boolean started) {
        if (started == pollStarted) {
            return false;
        }
        pollStarted = started;
        boolean progress = false;
        boolean extOff = fdHandlers.externalDisableCount > 0;
        if (started) {
            for (AioHandler h : fdHandlers.pollHandlers) {
                if (h.deleted || (h.external && extOff)) {
                    continue;
                }
                h.pollBegun = true;
                if (h.ioPollBegin != null) {
                    ctx.runCallback(h.ioPollBegin, h.name);
                }
            }
            return false;
        }
        for (AioHandler h : fdHandlers.handlers) {
            if (h == null || !h.pollBegun) {
                continue;
            }
            h.pollBegun = false;
            if (h.ioPollEnd != null) {
                ctx.runCallback(h.ioPollEnd, h.name);
            }
            if (!h.deleted && !(h.external && extOff) && pollOnce(h)) {
                progress = true;
            }
        }
        return progress;
    }

    private boolean pollOnce(AioHandler h) {
        boolean ready;
        try {
            ready = h.ioPoll.getAsBoolean();
        } catch (RuntimeException e) {
            ctx.logFailure(h.name + " ioPoll", e);
            return false;
        }
        if (ready) {
            h.pollReady = true;
            anyPollReady = true;
        }
        return ready;
    }

    /**
     * QEMU's {@code run_poll_handlers}: busy-poll for up to maxNs; true when a
     * handler reported work. A notification ends it early: the work it
     * announces (a BH, a timer) is not found by polling handlers.
     */
    private boolean runPollHandlers(long maxNs) {
        long deadline = System.nanoTime() + maxNs;
        for (;;) {
            if (runPollHandlersOnce()) {
                return true;
            }
            if (notifier.isNotified() || System.nanoTime() - deadline >= 0) {
                return false;
            }
            Thread.onSpinWait();
        }
    }

    /**
     * QEMU's {@code run_poll_handlers_once}: one check of every pollable
     * handler (ready ones are dispatched later); whether any was ready.
     */
    private boolean runPollHandlersOnce() {
        boolean extOff = fdHandlers.externalDisableCount > 0;
        boolean any = false;
        for (AioHandler h : fdHandlers.pollHandlers) {
            if (h.deleted || (h.external && extOff)) {
                continue;
            }
            any |= pollOnce(h);
        }
        return any;
    }

    /** QEMU's {@code adjust_polling_time}: grow while sleeps are short, drop to zero when one outlasts the maximum. */
    private void adjustPollTime(long blockNs, long maxNs) {
        if (blockNs <= pollNs) {
            return; // sweet spot
        }
        if (blockNs > maxNs) {
            pollNs = 0;
        } else if (pollNs < maxNs) {
            pollNs = pollNs == 0 ? POLL_START_NS : Math.min(maxNs, pollNs * 2);
        }
    }

    /**
     * QEMU's {@code aio_dispatch_ready_handlers}: runs handlers polling found
     * ready, then those epoll reported. External handlers are held while
     * disabled (QEMU's {@code aio_node_check}).
     */
    private boolean dispatchHandlers(FdMonEvents events, int n) {
        boolean progress = false;
        boolean extOff = fdHandlers.externalDisableCount > 0;
        if (anyPollReady) {
            anyPollReady = false;
            for (AioHandler h : fdHandlers.handlers) {
                if (h != null && h.pollReady) {
                    h.pollReady = false;
                    if (!h.deleted && !(h.external && extOff)) {
                        progress = true;
                        ctx.runCallback(h.ioPollReady, h.name);
                    }
                }
            }
        }
        if (n == 0) {
            return progress;
        }
        AioHandler[] hs = fdHandlers.handlers;
        for (int i = 0; i < n; i++) {
            long data = events.data(i);
            if (data == AioNotifier.EPOLL_DATA) {
                // QEMU: "aio_notify() does not count as progress". The wake-up carries no
                // work of its own, and pollWhile (seed 000) polls again while the last
                // poll made progress: it must not take a wake-up for work done.
                continue;
            }
            int slot = (int) data;
            AioHandler h = slot >= 0 && slot < hs.length ? hs[slot] : null;
            if (h == null || h.deleted || h.generation != (int) (data >>> 32)) {
                continue; // removed since the event was reported
            }
            if (h.external && fdHandlers.externalDisableCount > 0) {
                continue; // held while drained; masked at the next poll, dispatched after enable
            }
            int ev = events.events(i);
            if ((ev & (LibC.EPOLLIN | LibC.EPOLLHUP | LibC.EPOLLERR)) != 0 && h.ioRead != null) {
                progress = true;
                ctx.runCallback(h.ioRead, h.name);
            }
            if ((ev & (LibC.EPOLLOUT | LibC.EPOLLHUP | LibC.EPOLLERR)) != 0 && h.ioWrite != null && !h.deleted) {
                progress = true;
                ctx.runCallback(h.ioWrite, h.name);
            }
        }
        return progress;
    }
}
