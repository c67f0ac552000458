package io.vblk.aio;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The pending bottom halves of one {@link AioContext}: QEMU's
 * {@code ctx->bh_list} with {@code aio_bh_enqueue}, {@code aio_bh_poll} and
 * its {@code bh_slice_list} (util/async.c). Any thread pushes onto a
 * lock-free LIFO list; the holder of the context lock takes the whole list
 * as one batch (a slice) and runs it. A nested poll run by one of those BHs
 * finishes the outer batch too, so no BH waits behind a poll that is stuck
 * inside its sibling.
 */
final class BhList {
    /** The context's logger, so the bh_schedule trace keeps its category. */
    private static final Logger LOG = LoggerFactory.getLogger(AioContext.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    private static final VarHandle HEAD;

    static {
        try {
            HEAD = MethodHandles.lookup().findVarHandle(BhList.class, "head", BottomHalf.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private final AioContext ctx;
    @SuppressWarnings("unused") // accessed through HEAD
    private volatile BottomHalf head;

    /** BH batches being run, oldest first (QEMU's bh_slice_list); guarded by the context lock. */
    private BottomHalf[] slices = new BottomHalf[8];
    private int sliceHead;
    private int sliceTail;
    /** BHs run: a statistic for debuggers, written by the lock holder. */
    private long runs;

    BhList(AioContext ctx) {
        this.ctx = ctx;
    }

    /**
     * Pushes a BH the caller has just marked PENDING: QEMU's
     * {@code aio_bh_enqueue}. The caller notifies the context afterwards, so
     * the poller it wakes finds the BH.
     *
     * <p>The list invariant: a BH is on the list at most once, and only while
     * PENDING is set. Only the thread whose atomic or set PENDING pushes it
     * ({@link BottomHalf#schedule()}), and {@link #poll()} unlinks a BH
     * before it clears PENDING ({@link BottomHalf#takeFlags()}), so a
     * schedule racing with the dequeue pushes the BH afresh for the next poll
     * instead of rewriting {@code next} while the dequeue still reads it.
     */
    void enqueue(BottomHalf bh) {
        BottomHalf h;
        do {
            h = (BottomHalf) HEAD.getVolatile(this);
            bh.next = h;
        } while (!HEAD.compareAndSet(this, h, bh));
        if (TRACE) {
            LOG.trace("bh_schedule ctx={} bh={}", ctx.name(), bh.name());
        }
    }

    /**
     * Runs every BH pending at entry, newest first within a batch, and the rest
     * of any batch an outer (nested) poll was running: QEMU's {@code aio_bh_poll}.
     * A BH scheduled meanwhile waits for the next poll. Caller holds the lock.
     */
    boolean poll() {
        if (HEAD.getVolatile(this) == null && sliceHead == sliceTail) {
            return false;
        }
        BottomHalf batch = (BottomHalf) HEAD.getAndSet(this, null);
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
            slices[sliceHead] = bh.next; // unlink, then clear PENDING: enqueue's invariant
            bh.next = null;
            int flags = bh.takeFlags();
            if ((flags & (BottomHalf.SCHEDULED | BottomHalf.DELETED)) == BottomHalf.SCHEDULED) {
                progress = true;
                runs++;
                try {
                    bh.run();
                } catch (ClosedContextException | VirtualMachineError e) {
                    throw e;
                } catch (Throwable e) {
                    ctx.logFailure(bh.name(), e);
                }
            }
        }
        sliceHead = 0;
        sliceTail = 0;
        return progress;
    }

    /**
     * Whether a BH is pending — newly scheduled, or left in a batch an outer
     * (nested) poll is still running: a nested blocking poll must not sleep
     * with a sibling of its own BH waiting (QEMU's {@code aio_compute_bh_timeout}).
     * Caller holds the lock.
     */
    boolean hasPending() {
        if (HEAD.getVolatile(this) != null) {
            return true;
        }
        for (int i = sliceHead; i < sliceTail; i++) {
            if (slices[i] != null) {
                return true;
            }
        }
        return false;
    }

    /** Names of pending BHs (a racy walk, for diagnostics), at most {@code max}. */
    List<String> pendingNames(int max) {
        List<String> out = new ArrayList<>();
        BottomHalf bh = (BottomHalf) HEAD.getVolatile(this);
        while (bh != null && out.size() < max) {
            if (bh.isScheduled()) {
                out.add(bh.name());
            }
            bh = bh.next;
        }
        return out;
    }
}
