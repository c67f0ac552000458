package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One guest request as an explicit state machine: what a coroutine of
 * QEMU's {@code qcow2_co_preadv_part} / {@code qcow2_co_pwritev_part} keeps
 * on its stack, kept in fields of a pooled object instead.
 *
 * <p>A request has at most one operation outstanding (a child I/O, the
 * metadata lock, a metadata step). That operation completes into
 * {@link #complete(int)} or {@link #lockAcquired()}, both of which
 * {@link #kick()} the machine. {@code kick} is a trampoline: a completion that
 * arrives while {@link #step()} is still running (a child that completed
 * synchronously, a lock granted at once) only marks another round, so the
 * stack never grows with the number of chunks. When {@link #finish} was
 * called the request leaves the image's in-flight list, returns to its pool
 * and only then calls the caller's completion (which may reuse it at once).
 *
 * <p>Every request has a sequence number; deferred cluster frees wait until
 * every request that was in flight when they were recorded has completed
 * (see {@link DeferredFrees}).
 */
abstract class Qcow2Request implements BlockCompletion, MetadataLock.Waiter {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Request.class);

    final Qcow2Driver d;
    long seq;
    Qcow2Request prevInFlight;
    Qcow2Request nextInFlight;
    /** Link in an {@link AllocationRun}'s waiter list. */
    Qcow2Request nextWaiter;
    BlockCompletion cb;
    int state;
    /** Result of the last sub-operation. */
    int ret;
    boolean holdsLock;
    private boolean running;
    private boolean again;
    private boolean finished;
    private int result;

    Qcow2Request(Qcow2Driver d) {
        this.d = d;
    }

    /** Advances the machine until it waits for something or finishes. */
    abstract void step();

    /** Returns the request to its pool (called before the caller's completion runs). */
    abstract void recycle();

    /** Trace name of the request kind. */
    abstract String traceName();

    final void begin(BlockCompletion cb, int firstState) {
        this.cb = cb;
        this.state = firstState;
        this.finished = false;
        this.ret = 0;
        d.register(this);
        kick();
    }

    final void kick() {
        if (running) {
            again = true;
            return;
        }
        running = true;
        try {
            do {
                again = false;
                step();
            } while (again && !finished);
        } catch (RuntimeException | AssertionError e) {
            LOG.error("qcow2 image '{}': {} request failed in state {}", d.image(), traceName(), state, e);
            if (holdsLock) {
                unlock();
            }
            finished = true;
            result = -Errno.EIO;
        } finally {
            running = false;
        }
        if (finished) {
            finished = false;
            BlockCompletion c = cb;
            int r = result;
            cb = null;
            d.unregister(this, r);
            recycle();
            c.complete(r);
        }
    }

    /** Sub-operation completion: a child I/O, a metadata step. */
    @Override
    public final void complete(int r) {
        ret = r;
        kick();
    }

    @Override
    public final void lockAcquired() {
        holdsLock = true;
        kick();
    }

    /** Waits for the metadata lock, then continues in {@code nextState} holding it. */
    final void lock(int nextState) {
        state = nextState;
        d.lock().acquire(this);
    }

    final void unlock() {
        holdsLock = false;
        d.lock().release();
    }

    /** Ends the request with {@code r} once the current {@link #step()} returns. */
    final void finish(int r) {
        result = r;
        finished = true;
    }
}
