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
 * accept (seed 004).
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

    AioNotifier(String ctxName) {
        this.ctxName = ctxName;
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
        if ((int) NOTIFY_ME.getVolatile(this) != 0) {
            eventfdWrites.incrementAndGet();
            eventfd.set();
        }
        if (TRACE) {
            LOG.trace("aio_notify ctx={} notify_me={}", ctxName, (int) NOTIFY_ME.getVolatile(this));
        }
    }

    /**
     * The poller's half of {@link #aioNotify()}'s invariant: announce a
     * blocking wait ({@code notify_me += 2}), then re-check {@code notified}.
     * Returns whether the caller may sleep; it must call
     * {@link #leaveBlockingWait()} afterwards either way.
     */
    boolean enterBlockingWait() {
        NOTIFY_ME.getAndAdd(this, 2);
        return !(boolean) NOTIFIED.getVolatile(this);
    }

    void leaveBlockingWait() {
        NOTIFY_ME.getAndAdd(this, -2);
    }

    /**
     * QEMU's {@code aio_notify_accept}: forget the notification and consume
     * the eventfd if it fired. {@link AioPoll} says who may call it.
     */
    void aioNotifyAccept(boolean eventfdFired) {
        NOTIFIED.getAndSet(this, false);
        if (eventfdFired) {
            eventfd.testAndClear();
        }
    }

    boolean isNotified() {
        return (boolean) NOTIFIED.getVolatile(this);
    }

    int notifyMe() {
        return (int) NOTIFY_ME.getVolatile(this);
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
