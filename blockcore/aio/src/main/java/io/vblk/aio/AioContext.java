package io.vblk.aio;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicLong;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One event loop: QEMU's {@code AioContext} (util/async.c, util/aio-posix.c).
 *
 * <p>It owns an epoll instance, a list of bottom halves, fd handlers, timers
 * and a recursive lock. Its <em>home thread</em> (an {@link IOThread} or the
 * {@link MainLoop}) runs {@link #poll(boolean)} in a loop; only the home
 * thread may block. Any thread may schedule a BH, arm a timer or call
 * {@link #aioNotify()}; a thread holding the lock may also run a
 * non-blocking {@code poll(false)} (a foreign poll, as the main loop does
 * while it waits for an iothread).
 *
 * <p>The wake-up protocol is QEMU's: a blocking poller adds 2 to
 * {@code notify_me} and re-reads {@code notified} before it sleeps;
 * {@link #aioNotify()} sets {@code notified} and writes the eventfd only if a
 * poller announced itself; {@link #aioNotifyAccept} clears both, and runs only
 * after a blocking wait (seed 004) unless
 * {@link LegacyBehavior#NOTIFY_ACCEPT_IN_NONBLOCKING_POLL} is on.
 *
 * <p>Before it sleeps the home thread may busy-poll pollable handlers for an
 * adaptive window (QEMU's {@code poll-max-ns}); while it polls, {@code notify_me}
 * stays zero, so a BH scheduled from another thread costs no syscall.
 */
public final class AioContext {
    private static final Logger LOG = LoggerFactory.getLogger(AioContext.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    /** epoll data of the context's own notifier. */
    private static final long NOTIFIER_DATA = -1L;
    private static final int MAX_EVENTS = 128;
    /** QEMU's default initial poll window once polling starts growing. */
    private static final long POLL_START_NS = 4_000;
    /** QEMU's IOThread default {@code poll-max-ns}. */
    public static final long DEFAULT_POLL_MAX_NS = 32_768;

    private static final VarHandle NOTIFY_ME;
    private static final VarHandle NOTIFIED;
    private static final VarHandle BH_HEAD;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            NOTIFY_ME = l.findVarHandle(AioContext.class, "notifyMe", int.class);
            NOTIFIED = l.findVarHandle(AioContext.class, "notified", boolean.class);
            BH_HEAD = l.findVarHandle(AioContext.class, "bhHead", BottomHalf.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** What the home thread is doing, for the watchdog's dump. */
    public enum Phase { NOT_RUNNING, DISPATCHING, POLLING, SLEEPING, STOPPED }

    private final String name;
    private final MainLoop loop;
    private final int epfd;
    private final EventNotifier notifier;
    final TimerList timers = new TimerList(this);
    private final AioContextLock lock = new AioContextLock();
    final ThreadPool.Completer poolCompleter = new ThreadPool.Completer(this);

    private volatile Thread home;
    @SuppressWarnings("unused") // accessed through NOTIFY_ME
    private volatile int notifyMe;
    @SuppressWarnings("unused") // accessed through NOTIFIED
    private volatile boolean notified;
    private volatile int externalDisableCount;
    @SuppressWarnings("unused") // accessed through BH_HEAD
    private volatile BottomHalf bhHead;

    /** BH batches being run, oldest first (QEMU's bh_slice_list); guarded by the context lock. */
    private BottomHalf[] slices = new BottomHalf[8];
    private int sliceHead;
    private int sliceTail;

    private final Object handlerLock = new Object();
    private volatile AioHandler[] handlers = new AioHandler[0];
    private volatile AioHandler[] pollHandlers = new AioHandler[0];
    /** Armed handlers that cannot be polled: if any, polling success must still be followed by epoll_wait(0). */
    private volatile int pollDisableCount;
    private volatile boolean externalMasked; // written under handlerLock
    private int nextGeneration;     // guarded by handlerLock
    private final ArrayList<Integer> freeSlots = new ArrayList<>();

    private long pollNs;
    private volatile long pollMaxNs;
    private boolean pollStarted;
    private boolean anyPollReady;

    private final Memory homeEvents = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
    private final ByteBuffer homeBuf = homeEvents.getByteBuffer(0, homeEvents.size()).order(ByteOrder.LITTLE_ENDIAN);
    private final Memory foreignEvents = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
    private final ByteBuffer foreignBuf = foreignEvents.getByteBuffer(0, foreignEvents.size()).order(ByteOrder.LITTLE_ENDIAN);
    private final Memory timespec = new Memory(16);
    private final Memory ctlEvent = new Memory(LibC.EPOLL_EVENT_SIZE); // guarded by handlerLock

    private volatile Phase phase = Phase.NOT_RUNNING;
    private volatile Runnable sleepHook;
    private volatile Runnable pollStartHook;
    private volatile boolean closed;

    // statistics, written by the home thread (or a lock holder), read racily
    private long polls;
    private long sleeps;
    private long pollSuccesses;
    private final AtomicLong eventfdWrites = new AtomicLong();
    private long bhRuns;
    private long callbackFailures;

    AioContext(String name, MainLoop loop, long pollMaxNs) {
        this.name = name;
        this.loop = loop;
        this.pollMaxNs = pollMaxNs;
        this.epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
        this.notifier = new EventNotifier();
        epollCtl(LibC.EPOLL_CTL_ADD, notifier.fd(), LibC.EPOLLIN, NOTIFIER_DATA);
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

    public boolean inHomeThread() {
        return Thread.currentThread() == home;
    }

    public Thread homeThread() {
        return home;
    }

    void setHomeThread(Thread t) {
        home = t;
        phase = Phase.DISPATCHING;
    }

    // ------------------------------------------------------------------ bottom halves

    /** QEMU's {@code aio_bh_new}: a reusable BH whose callback runs in this context. */
    public BottomHalf bhNew(String name, Runnable callback) {
        return new BottomHalf(this, name, callback, 0);
    }

    /** QEMU's {@code aio_bh_schedule_oneshot}: run {@code callback} once in this context; callable from any thread. */
    public void bhScheduleOneshot(String name, Runnable callback) {
        BottomHalf bh = BottomHalf.oneshot(this, name, callback);
        bhEnqueue(bh);
        aioNotify();
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

    void bhEnqueue(BottomHalf bh) {
        BottomHalf head;
        do {
            head = (BottomHalf) BH_HEAD.getVolatile(this);
            bh.next = head;
        } while (!BH_HEAD.compareAndSet(this, head, bh));
        if (TRACE) {
            LOG.trace("bh_schedule ctx={} bh={}", name, bh.name());
        }
    }

    /**
     * Runs every BH pending at entry, newest first within a batch, and the rest
     * of any batch an outer (nested) poll was running: QEMU's {@code aio_bh_poll}.
     * A BH scheduled meanwhile waits for the next poll. Caller holds the lock.
     */
    private boolean bhPoll() {
        if (BH_HEAD.getVolatile(this) == null && sliceHead == sliceTail) {
            return false;
        }
        BottomHalf batch = (BottomHalf) BH_HEAD.getAndSet(this, null);
        if (sliceTail == slices.length) {
            slices = Arrays.copyOf(slices, slices.length * 2);
        }
        slices[sliceTail++] = batch;
        boolean progress = false;
        while (sliceHead < sliceTail) {
            BottomHalf bh = slices[sliceHead];
            if (bh == null) {
                sliceHead++;
                continue;
            }
            slices[sliceHead] = bh.next;
            bh.next = null;
            int flags = bh.takeFlags();
            if ((flags & (BottomHalf.SCHEDULED | BottomHalf.DELETED)) == BottomHalf.SCHEDULED) {
                progress = true;
                bhRuns++;
                try {
                    bh.run();
                } catch (ClosedContextException | VirtualMachineError e) {
                    throw e;
                } catch (Throwable e) {
                    logFailure(bh.name(), e);
                }
            }
        }
        sliceHead = 0;
        sliceTail = 0;
        return progress;
    }

    // ------------------------------------------------------------------ notification

    /**
     * Wakes the home thread: QEMU's {@code aio_notify}. Marks the context
     * notified (a polling or about-to-sleep poller sees it) and writes the
     * eventfd only if a blocking poller announced itself in notify_me.
     */
    public void aioNotify() {
        if ((boolean) NOTIFIED.getVolatile(this)) {
            // Already notified and not yet accepted: a poller that sleeps after
            // this point re-reads 'notified' first, one asleep was woken by
            // whoever set it. (Volatile accesses are sequentially consistent.)
            return;
        }
        NOTIFIED.setVolatile(this, true);
        if ((int) NOTIFY_ME.getVolatile(this) != 0) {
            eventfdWrites.incrementAndGet();
            notifier.set();
        }
        if (TRACE) {
            LOG.trace("aio_notify ctx={} notify_me={}", name, (int) NOTIFY_ME.getVolatile(this));
        }
    }

    /**
     * QEMU's {@code aio_notify_accept}: forget the notification and consume
     * the eventfd if it fired. Only correct in the home thread after a blocking
     * wait; from anywhere else it steals a wake-up meant for the sleeper (seed 004).
     */
    private void aioNotifyAccept(boolean notifierFired) {
        NOTIFIED.getAndSet(this, false);
        if (notifierFired) {
            notifier.testAndClear();
        }
    }

    public int notifyMe() {
        return (int) NOTIFY_ME.getVolatile(this);
    }

    public boolean isNotified() {
        return (boolean) NOTIFIED.getVolatile(this);
    }

    // ------------------------------------------------------------------ external clients

    /**
     * Stops dispatching external handlers (guest kicks) until the matching
     * {@link #enableExternal()}: QEMU's {@code aio_disable_external}. Nests.
     * Their events are kept: the fds stay readable and are dispatched later.
     */
    public void disableExternal() {
        synchronized (handlerLock) {
            externalDisableCount++;
        }
    }

    /** QEMU's {@code aio_enable_external}: the last enable kicks the loop so it re-arms the fds. */
    public void enableExternal() {
        int now;
        synchronized (handlerLock) {
            if (externalDisableCount == 0) {
                throw new IllegalStateException(name + ": enableExternal without disableExternal");
            }
            now = --externalDisableCount;
        }
        if (now == 0) {
            aioNotify();
        }
    }

    public boolean isExternalDisabled() {
        return externalDisableCount > 0;
    }

    /** Whether the home thread has masked the external fds in epoll (it polled while they were disabled). */
    public boolean isExternalMasked() {
        return externalMasked;
    }

    public int externalDisableCount() {
        return externalDisableCount;
    }

    /**
     * Brings the kernel's interest set in line with the disable count, as
     * QEMU's poller rebuilt its fd set on each iteration: external fds are
     * masked while disabled and re-armed by the first poll after enable.
     * Home thread only.
     */
    private void updateExternalArming() {
        boolean want = externalDisableCount > 0;
        if (want == externalMasked) {
            return;
        }
        synchronized (handlerLock) {
            want = externalDisableCount > 0;
            if (want == externalMasked) {
                return;
            }
            externalMasked = want;
            for (AioHandler h : handlers) {
                if (h != null && h.external && !h.deleted) {
                    int ev = want ? 0 : h.wantedEvents();
                    epollCtl(LibC.EPOLL_CTL_MOD, h.fd, ev, h.epollData());
                    h.armedEvents = ev;
                }
            }
            rebuildPollSets();
        }
    }

    // ------------------------------------------------------------------ fd handlers

    /** QEMU's {@code aio_set_fd_handler}: watch an fd. Replaces a handler already set on the same fd. */
    public AioHandler setFdHandler(AioHandler.Builder b) {
        AioContextLock.Held held = inHomeThread() ? null : lock.acquire();
        try {
            synchronized (handlerLock) {
                AioHandler[] hs = handlers;
                AioHandler probe = new AioHandler(this, b, -1, 0);
                for (AioHandler h : hs) {
                    if (h != null && h.fd == probe.fd && !h.deleted) {
                        removeLocked(h);
                    }
                }
                hs = handlers;
                int slot = freeSlots.isEmpty() ? hs.length : freeSlots.remove(freeSlots.size() - 1);
                AioHandler h = new AioHandler(this, b, slot, nextGeneration++ & 0x7fffffff);
                int ev = h.external && externalMasked ? 0 : h.wantedEvents();
                epollCtl(LibC.EPOLL_CTL_ADD, h.fd, ev, h.epollData());
                h.armedEvents = ev;
                AioHandler[] n = slot < hs.length ? hs.clone() : Arrays.copyOf(hs, slot + 1);
                n[slot] = h;
                handlers = n;
                rebuildPollSets();
                return h;
            }
        } finally {
            if (held != null) {
                held.close();
            }
        }
    }

    void removeHandler(AioHandler h) {
        AioContextLock.Held held = inHomeThread() ? null : lock.acquire();
        try {
            synchronized (handlerLock) {
                removeLocked(h);
            }
        } finally {
            if (held != null) {
                held.close();
            }
        }
    }

    private void removeLocked(AioHandler h) {
        if (h.deleted) {
            return;
        }
        h.deleted = true;
        if (h.pollBegun) {
            h.pollBegun = false;
            if (h.ioPollEnd != null) {
                runCallback(h.ioPollEnd, h.name);
            }
        }
        if (LibC.epoll_ctl(epfd, LibC.EPOLL_CTL_DEL, h.fd, Pointer.NULL) < 0) {
            int err = LibC.errno();
            if (err != Errno.EBADF && err != Errno.ENOENT) {
                throw new NativeException("epoll_ctl(DEL, " + h.fd + ")", err);
            }
        }
        AioHandler[] n = handlers.clone();
        n[h.slot] = null;
        handlers = n;
        freeSlots.add(h.slot);
        rebuildPollSets();
    }

    private void rebuildPollSets() {
        List<AioHandler> ph = new ArrayList<>();
        int disable = 0;
        for (AioHandler h : handlers) {
            if (h == null || h.deleted || h.armedEvents == 0) {
                continue;
            }
            if (h.ioPoll != null) {
                ph.add(h);
            } else {
                disable++;
            }
        }
        pollHandlers = ph.toArray(new AioHandler[0]);
        pollDisableCount = disable;
    }

    public List<AioHandler> handlers() {
        List<AioHandler> l = new ArrayList<>();
        for (AioHandler h : handlers) {
            if (h != null && !h.deleted) {
                l.add(h);
            }
        }
        return l;
    }

    private void epollCtl(int op, int fd, int events, long data) {
        synchronized (handlerLock) {
            ctlEvent.setInt(0, events);
            ctlEvent.setLong(4, data);
            LibC.check(LibC.epoll_ctl(epfd, op, fd, ctlEvent), "epoll_ctl(" + op + ", fd " + fd + ")");
        }
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

    /** Upper bound of the adaptive busy-poll window; 0 disables polling (QEMU's {@code poll-max-ns}). */
    public void setPollMaxNs(long ns) {
        if (ns < 0) {
            throw new IllegalArgumentException("poll-max-ns must be >= 0, got " + ns);
        }
        pollMaxNs = ns;
    }

    public long pollMaxNs() {
        return pollMaxNs;
    }

    /** The current adaptive window (racy read, for statistics). */
    public long pollNs() {
        return pollNs;
    }

    /**
     * Test seam: called by the home thread after it has announced itself in
     * notify_me, re-checked {@code notified} and released the context lock,
     * immediately before it sleeps in epoll_wait. Lets a test hold the poller at that exact point to replay
     * a race step by step; it runs the same way whatever legacy switch is on.
     */
    public void setSleepHook(Runnable hook) {
        sleepHook = hook;
    }

    /**
     * Test seam: called by the home thread at the start of each poll, before
     * it takes the context lock or looks at its BHs and fds.
     */
    public void setPollStartHook(Runnable hook) {
        pollStartHook = hook;
    }

    /**
     * One iteration of the event loop: QEMU's {@code aio_poll}. Returns whether
     * progress was made: a BH, handler or timer callback ran (the context's own
     * notifier does not count). Only the home thread may block; a foreign thread
     * may poll non-blocking, holding the context lock while it dispatches.
     */
    public boolean poll(boolean blocking) {
        Thread t = Thread.currentThread();
        if (t == home) {
            return pollHome(blocking);
        }
        if (blocking) {
            throw new IllegalStateException("blocking poll of AioContext '" + name + "' from thread '" + t.getName()
                    + "': only its home thread '" + (home == null ? "(none)" : home.getName()) + "' may block in it");
        }
        return pollForeign();
    }

    private boolean pollHome(boolean blocking) {
        Runnable startHook = pollStartHook;
        if (startHook != null) {
            startHook.run();
        }
        lock.acquire();
        try {
            checkOpen();
            polls++;
            updateExternalArming();
            long timeout = blocking ? computeTimeoutNs() : 0;
            long start = 0;
            boolean progress = false;
            long maxNs = pollMaxNs;
            if (blocking && maxNs > 0) {
                start = System.nanoTime();
            }
            if (timeout != 0 && pollNs > 0 && maxNs > 0) {
                phase = Phase.POLLING;
                setPollStarted(true);
                if (runPollHandlers(timeout < 0 ? pollNs : Math.min(pollNs, timeout))) {
                    progress = true;
                    timeout = 0;
                    pollSuccesses++;
                } else if ((boolean) NOTIFIED.getVolatile(this)) {
                    timeout = 0;
                }
            }
            if (timeout != 0 && pollStarted && setPollStarted(false)) {
                progress = true;
                timeout = 0;
            }
            boolean useNotifyMe = timeout != 0;
            if (useNotifyMe) {
                NOTIFY_ME.getAndAdd(this, 2);
                if ((boolean) NOTIFIED.getVolatile(this)) {
                    timeout = 0;
                }
            }
            int n = 0;
            if (timeout != 0) {
                phase = Phase.SLEEPING;
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
                    n = epollWait(homeEvents, timeout);
                } finally {
                    for (int i = 0; i < held; i++) {
                        lock.acquire();
                    }
                }
            } else if (pollDisableCount > 0 || !pollStarted) {
                n = epollWait(homeEvents, 0);
            } else if (!progress) {
                // QEMU: "if polling is allowed, non-blocking aio_poll does not need the system
                // call --- a single round of run_poll_handlers_once suffices". Every armed handler
                // is pollable and polling has begun (their notifications are off), so a check of
                // each replaces epoll_wait(0): a BH round costs no syscall.
                runPollHandlersOnce();
            }
            if (phase != Phase.DISPATCHING) {
                phase = Phase.DISPATCHING;
            }
            if (useNotifyMe) {
                NOTIFY_ME.getAndAdd(this, -2);
            }
            checkOpen();
            boolean notifierFired = scanForNotifier(homeBuf, n);
            if (blocking || legacy().isOn(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL)) {
                aioNotifyAccept(notifierFired);
            }
            if (start != 0) {
                adjustPollTime(System.nanoTime() - start, maxNs);
            }
            progress |= bhPoll();
            progress |= dispatchHandlers(homeBuf, n);
            progress |= timers.run();
            return progress;
        } finally {
            lock.release();
        }
    }

    private boolean pollForeign() {
        lock.acquire();
        try {
            if (closed) {
                return false;
            }
            int n = epollWait(foreignEvents, 0);
            boolean notifierFired = scanForNotifier(foreignBuf, n);
            if (legacy().isOn(LegacyBehavior.NOTIFY_ACCEPT_IN_NONBLOCKING_POLL)) {
                // The pre-fix aio_poll accepted unconditionally: a non-blocking
                // poll from another thread consumes the eventfd the sleeping home
                // thread was about to be woken by.
                aioNotifyAccept(notifierFired);
            }
            boolean progress = bhPoll();
            progress |= dispatchHandlers(foreignBuf, n);
            progress |= timers.run();
            return progress;
        } finally {
            lock.release();
        }
    }

    /**
     * 0 when a BH is pending — newly scheduled, or left in a batch an outer
     * (nested) poll is still running: a nested blocking poll must not sleep
     * with a sibling of its own BH waiting (QEMU's aio_compute_timeout).
     */
    private long computeTimeoutNs() {
        if (BH_HEAD.getVolatile(this) != null) {
            return 0;
        }
        for (int i = sliceHead; i < sliceTail; i++) {
            if (slices[i] != null) {
                return 0;
            }
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
        boolean extOff = externalDisableCount > 0;
        if (started) {
            for (AioHandler h : pollHandlers) {
                if (h.deleted || (h.external && extOff)) {
                    continue;
                }
                h.pollBegun = true;
                if (h.ioPollBegin != null) {
                    runCallback(h.ioPollBegin, h.name);
                }
            }
            return false;
        }
        for (AioHandler h : handlers) {
            if (h == null || !h.pollBegun) {
                continue;
            }
            h.pollBegun = false;
            if (h.ioPollEnd != null) {
                runCallback(h.ioPollEnd, h.name);
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
            logFailure(h.name + " ioPoll", e);
            return false;
        }
        if (ready) {
            h.pollReady = true;
            anyPollReady = true;
        }
        return ready;
    }

    /** QEMU's {@code run_poll_handlers}: busy-poll for up to maxNs; true when a handler reported work. */
    private boolean runPollHandlers(long maxNs) {
        long deadline = System.nanoTime() + maxNs;
        for (;;) {
            if (runPollHandlersOnce()) {
                return true;
            }
            if ((boolean) NOTIFIED.getVolatile(this) || System.nanoTime() - deadline >= 0) {
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
        boolean extOff = externalDisableCount > 0;
        boolean any = false;
        for (AioHandler h : pollHandlers) {
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

    private int epollWait(Memory events, long timeoutNs) {
        int r;
        if (timeoutNs == 0) {
            r = LibC.epoll_wait(epfd, events, MAX_EVENTS, 0);
        } else if (EpollPwait2.AVAILABLE) {
            Pointer ts = Pointer.NULL;
            if (timeoutNs > 0) {
                timespec.setLong(0, timeoutNs / 1_000_000_000L);
                timespec.setLong(8, timeoutNs % 1_000_000_000L);
                ts = timespec;
            }
            r = EpollPwait2.epoll_pwait2(epfd, events, MAX_EVENTS, ts, Pointer.NULL);
        } else {
            int ms = timeoutNs < 0 ? -1 : (int) Math.min(Integer.MAX_VALUE, (timeoutNs + 999_999) / 1_000_000);
            r = LibC.epoll_wait(epfd, events, MAX_EVENTS, ms);
        }
        if (r < 0) {
            int err = LibC.errno();
            if (err == LibC.EINTR) {
                return 0;
            }
            throw new NativeException("epoll_wait(" + name + ")", err);
        }
        return r;
    }

    private static boolean scanForNotifier(ByteBuffer buf, int n) {
        for (int i = 0; i < n; i++) {
            if (buf.getLong(i * LibC.EPOLL_EVENT_SIZE + 4) == NOTIFIER_DATA) {
                return true;
            }
        }
        return false;
    }

    private boolean dispatchHandlers(ByteBuffer buf, int n) {
        boolean progress = false;
        boolean extOff = externalDisableCount > 0;
        if (anyPollReady) {
            anyPollReady = false;
            for (AioHandler h : handlers) {
                if (h != null && h.pollReady) {
                    h.pollReady = false;
                    if (!h.deleted && !(h.external && extOff)) {
                        progress = true;
                        runCallback(h.ioPollReady, h.name);
                    }
                }
            }
        }
        if (n == 0) {
            return progress;
        }
        AioHandler[] hs = handlers;
        for (int i = 0; i < n; i++) {
            int off = i * LibC.EPOLL_EVENT_SIZE;
            long data = buf.getLong(off + 4);
            if (data == NOTIFIER_DATA) {
                continue;
            }
            int slot = (int) data;
            AioHandler h = slot >= 0 && slot < hs.length ? hs[slot] : null;
            if (h == null || h.deleted || h.generation != (int) (data >>> 32)) {
                continue; // removed since the event was reported
            }
            if (h.external && externalDisableCount > 0) {
                continue; // held while drained; masked at the next poll, dispatched after enable
            }
            int ev = buf.getInt(off);
            if ((ev & (LibC.EPOLLIN | LibC.EPOLLHUP | LibC.EPOLLERR)) != 0 && h.ioRead != null) {
                progress = true;
                runCallback(h.ioRead, h.name);
            }
            if ((ev & (LibC.EPOLLOUT | LibC.EPOLLHUP | LibC.EPOLLERR)) != 0 && h.ioWrite != null && !h.deleted) {
                progress = true;
                runCallback(h.ioWrite, h.name);
            }
        }
        return progress;
    }

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

    private void checkOpen() {
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
        notifier.set();
    }

    /** Frees the epoll instance and notifier; only once no thread can poll any more. */
    void freeResources() {
        closed = true;
        phase = Phase.STOPPED;
        synchronized (handlerLock) {
            for (AioHandler h : handlers) {
                if (h != null) {
                    h.deleted = true;
                }
            }
            handlers = new AioHandler[0];
            pollHandlers = new AioHandler[0];
        }
        notifier.close();
        LibC.close(epfd);
    }

    public Phase phase() {
        return phase;
    }

    public long pollCount() {
        return polls;
    }

    public long eventfdWrites() {
        return eventfdWrites.get();
    }

    public long callbackFailures() {
        return callbackFailures;
    }

    /** Names of pending BHs (a racy walk, for diagnostics), at most {@code max}. */
    public List<String> pendingBottomHalves(int max) {
        List<String> out = new ArrayList<>();
        BottomHalf bh = (BottomHalf) BH_HEAD.getVolatile(this);
        while (bh != null && out.size() < max) {
            if (bh.isScheduled()) {
                out.add(bh.name());
            }
            bh = bh.next;
        }
        return out;
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
        sb.append("  phase=").append(phase)
                .append(" notify_me=").append(notifyMe())
                .append(" notified=").append(isNotified())
                .append(" external_disable_cnt=").append(externalDisableCount)
                .append(" poll_ns=").append(pollNs).append(" poll_max_ns=").append(pollMaxNs)
                .append(" polls=").append(polls).append(" sleeps=").append(sleeps)
                .append(" callback_failures=").append(callbackFailures).append('\n');
        Thread owner = lock.owner();
        sb.append("  lock: ").append(owner == null ? "free" : "held by '" + owner.getName() + "' depth " + lock.depth())
                .append(lock.hasWaiters() ? " (threads waiting)" : "").append('\n');
        List<String> bhs = pendingBottomHalves(32);
        sb.append("  pending BHs (").append(bhs.size()).append("): ").append(bhs).append('\n');
        sb.append("  handlers: ").append(handlers()).append('\n');
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
