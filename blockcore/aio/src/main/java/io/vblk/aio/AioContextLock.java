package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The recursive context lock: QEMU's {@code aio_context_acquire/release}.
 * The home thread holds it while it dispatches; a foreign thread holds it to
 * touch objects of the context. It is fair, so a waiting main loop is not
 * starved by a busy iothread that releases and re-takes it every iteration.
 * The holder and its depth are published for the watchdog's dump: a wait
 * that releases the lock once while its caller holds it twice is the hang of
 * seeds 002 and 003.
 */
public final class AioContextLock {
    private static final VarHandle DEPTH;

    static {
        try {
            DEPTH = MethodHandles.lookup().findVarHandle(AioContextLock.class, "depth", int.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final Lock lock = new Lock();
    private final Held held = this::release;
    /** Written by the holder with opaque stores (no fence on the hot path), read racily by dumps. */
    @SuppressWarnings("unused") // accessed through DEPTH
    private int depth;

    /** Acquires the lock; close the result to release it (try-with-resources). */
    public Held acquire() {
        lock.lock();
        DEPTH.setOpaque(this, (int) DEPTH.getOpaque(this) + 1);
        return held;
    }

    public void release() {
        if (!lock.isHeldByCurrentThread()) {
            throw new IllegalMonitorStateException("context lock released by a thread that does not hold it");
        }
        DEPTH.setOpaque(this, (int) DEPTH.getOpaque(this) - 1);
        lock.unlock();
    }

    public boolean isHeldByCurrentThread() {
        return lock.isHeldByCurrentThread();
    }

    /** How many times the current thread holds the lock. */
    public int holdCount() {
        return lock.getHoldCount();
    }

    /** The holding thread, or null: for diagnostics. */
    public Thread owner() {
        return lock.owner();
    }

    /** The holder's recursion depth (racy snapshot for diagnostics). */
    public int depth() {
        return (int) DEPTH.getOpaque(this);
    }

    public boolean hasWaiters() {
        return lock.hasQueuedThreads();
    }

    /** A held lock section; closing it releases one level. */
    @FunctionalInterface
    public interface Held extends AutoCloseable {
        @Override
        void close();
    }

    private static final class Lock extends ReentrantLock {
        private static final long serialVersionUID = 1L;

        Lock() {
            super(true);
        }

        Thread owner() {
            return getOwner();
        }
    }
}
