package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.atomic.AtomicLong;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * How an {@link AioContext} is woken: QEMU's {@code aio_notify},
 * {@code aio_notify_accept} and the {@code ctx->notify_me} /
 * {@code ctx->notified} pair around the context's own eventfd
 * ({@code ctx->notifier}), all in util/async.c. Any thread may call
 * {@link #aioNotify()}; only the poll loop ({@link AioPoll}) announces a
 * blocking wait and accepts a notification, and it alone decides when it may
 * accept (seed 004). Under a scenario's {@link VisibilityModel} notify_me is
 * a modelled field, so the barrier bug 006's fix added can be shown missing.
 */
final class AioNotifier {
    /** The context's logger, so the aio_notify trace keeps its category. */
    private static final Logger LOG = LoggerFactory.getLogger(AioContext.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    /**
     * epoll data of the context's own eventfd in its fd monitor. No handler
     * uses it: {@link AioHandler#epollData()} keeps the generation to 31 bits.
     */
    static final long EPOLL_DATA = -1L;

    private static final VarHandle NOTIFY_ME;
    private static final VarHandle NOTIFIED;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            NOTIFY_ME = l.findVarHandle(AioNotifier.class, "notifyMe", int.class);
            NOTIFIED = l.findVarHandle(AioNotifier.class, "notified", boolean.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final String ctxName;
    private final EventNotifier eventfd = new EventNotifier();
    @SuppressWarnings("unused") // accessed through NOTIFY_ME
    private volatile int notifyMe;
    @SuppressWarnings("unused") // accessed through NOTIFIED
    private volatile boolean notified;
    private final AtomicLong eventfdWrites = new AtomicLong();
    private final LegacySwitches legacy;
    /**
     * Null on the ordinary path. Under a scenario's store-buffer model,
     * notify_me lives in {@link #modelledNotifyMe} and the poller's raise of
     * it stays in its store buffer until a barrier (bug 006).
     */
    private final VisibilityModel visibility;
    private final VisibilityModel.Field modelledNotifyMe;

    AioNotifier(String ctxName) {
        this(ctxName, new LegacySwitches(), null);
    }

    AioNotifier(String ctxName, LegacySwitches legacy, VisibilityModel visibility) {
        this.ctxName = ctxName;
        this.legacy = legacy;
        this.visibility = visibility;
        this.modelledNotifyMe = visibility == null ? null : visibility.field(ctxName + ".notify_me", 0);
    }

    /** The eventfd the fd monitor watches with {@link #EPOLL_DATA}. */
    int fd() {
        return eventfd.fd();
    }

    /**
     * Wakes the home thread: QEMU's {@code aio_notify}. Marks the context
     * notified (a polling or about-to-sleep poller sees it) and writes the
     * eventfd only if a blocking poller announced itself in notify_me.
     */
    void aioNotify() {
        if (legacy.isOn(LegacyBehavior.AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME)) {
            aioNotifyBefore2020();
            return;
        }
        // The wake-up invariant, kept by this method and enterBlockingWait(): a
        // notification is never lost, and the eventfd is written only when a poller
        // may sleep. Here we store 'notified', then load notify_me; the poller
        // adds to notify_me, then loads 'notified'. Volatile accesses are
        // sequentially consistent, so at least one side sees the other's store:
        // the poller sees 'notified' and does not sleep, or we see notify_me != 0
        // and write the eventfd it sleeps on. A home thread that is dispatching or
        // busy-polling keeps notify_me at 0, so waking it costs no syscall.
        if ((boolean) NOTIFIED.getVolatile(this)) {
            // Already notified and not yet accepted: a poller that sleeps after
            // this point re-reads 'notified' first, one asleep was woken by
            // whoever set it.
            return;
        }
        NOTIFIED.setVolatile(this, true);
        if (loadNotifyMeAfterBarrier() != 0) {
            eventfdWrites.incrementAndGet();
            eventfd.set();
        }
        if (TRACE) {
            LOG.trace("aio_notify ctx={} notify_me={}", ctxName, notifyMe());
        }
    }

    /**
     * QEMU's aio_notify from 2015 to 2020 (bug 005's era): nothing unless a
     * poller announced itself in notify_me. Its poller raised notify_me first
     * and read its BHs after ({@link #raiseNotifyMe()}), so a BH was never
     * lost; a plain flag set before the poller announced itself was.
     */
    private void aioNotifyBefore2020() {
        if (loadNotifyMeAfterBarrier() != 0) {
            eventfdWrites.incrementAndGet();
            eventfd.set();
            NOTIFIED.setVolatile(this, true);
        }
        if (TRACE) {
            LOG.trace("aio_notify ctx={} notify_me={} (pre-2020 protocol)", ctxName, notifyMe());
        }
    }

    /**
     * Whether the poller runs the pre-2020 protocol: {@link #raiseNotifyMe()}
     * first of all in a blocking poll, then BHs and timers, no re-check of
     * notified.
     */
    boolean isEraOfBug005() {
        return legacy.isOn(LegacyBehavior.AIO_NOTIFY_ONLY_WHILE_NOTIFY_ME);
    }

    /** The pre-2020 poller's announcement ({@code atomic_add(&ctx->notify_me, 2)}); leave with {@link #leaveBlockingWait()}. */
    void raiseNotifyMe() {
        if (visibility != null) {
            visibility.add(modelledNotifyMe, 2);
            visibility.fence("aio_poll: notify_me raised");
            return;
        }
        NOTIFY_ME.getAndAdd(this, 2);
    }

    /**
     * aio_notify's {@code smp_mb()} (both before and after bug 006's fix) and
     * its read of notify_me. Under the model the barrier drains this thread's
     * buffer, and the read sees the poller's raise only if the poller drained
     * its own.
     */
    private int loadNotifyMeAfterBarrier() {
        if (visibility == null) {
            return (int) NOTIFY_ME.getVolatile(this);
        }
        visibility.fence("aio_notify");
        return visibility.load(modelledNotifyMe, "aio_notify");
    }

    /**
     * The poller's half of {@link #aioNotify()}'s invariant: announce a
     * blocking wait ({@code notify_me += 2}), then re-check {@code notified}.
     * Returns whether the caller may sleep; it must call
     * {@link #leaveBlockingWait()} afterwards either way.
     */
    boolean enterBlockingWait() {
        if (visibility != null) {
            return enterBlockingWaitModelled();
        }
        // A volatile RMW: the JVM orders it before the volatile load below, so
        // it is bug 006's explicit smp_mb() as well.
        NOTIFY_ME.getAndAdd(this, 2);
        return !(boolean) NOTIFIED.getVolatile(this);
    }

    /**
     * Bug 006 under the store-buffer model: the raise of notify_me is
     * buffered, and only the fix's explicit {@code smp_mb()} publishes it
     * before {@code notified} is read. Pre-fix, the atomic add was trusted to
     * be the barrier, and C11 does not make it one for the relaxed read that
     * follows: a notifier may read notify_me == 0 after this thread read
     * notified == false, and neither wakes the other.
     */
    private boolean enterBlockingWaitModelled() {
        visibility.add(modelledNotifyMe, 2);
        if (!legacy.isOn(LegacyBehavior.NO_EXPLICIT_BARRIER_AFTER_NOTIFY_ME)) {
            visibility.fence("aio_poll: smp_mb after raising notify_me");
        }
        return !(boolean) NOTIFIED.getVolatile(this);
    }

    void leaveBlockingWait() {
        if (visibility != null) {
            visibility.add(modelledNotifyMe, -2); // QEMU: a store-release; it drains at the next barrier
            return;
        }
        NOTIFY_ME.getAndAdd(this, -2);
    }

    /**
     * QEMU's {@code aio_notify_accept}: forget the notification and consume
     * the eventfd if it fired. {@link AioPoll} says who may call it.
     */
    void aioNotifyAccept(boolean eventfdFired) {
        NOTIFIED.getAndSet(this, false);
        if (eventfdFired) {
            if (visibility != null) {
                visibility.syscall(); // the eventfd read
            }
            eventfd.testAndClear();
        }
    }

    boolean isNotified() {
        return (boolean) NOTIFIED.getVolatile(this);
    }

    /** notify_me as other threads see it (under the model: its drained value). */
    int notifyMe() {
        return visibility == null ? (int) NOTIFY_ME.getVolatile(this) : modelledNotifyMe.visible();
    }

    long eventfdWrites() {
        return eventfdWrites.get();
    }

    /** Makes the eventfd readable whatever notify_me says, so a sleeper wakes to see its context closed. */
    void wakeUnconditionally() {
        eventfd.set();
    }

    void close() {
        eventfd.close();
    }
}
