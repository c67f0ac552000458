package io.vblk.job;

import io.vblk.aio.Errno;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;

import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code drive-mirror}/{@code blockdev-mirror} and the commit of the active
 * layer (QEMU's block/mirror.c, {@code commit_active_start}): copies a live
 * disk to a target while the guest keeps writing it.
 *
 * <p>A {@code mirror_top} filter ({@link JobFilter}) is inserted between the
 * device and the source; every guest write marks its granules in a
 * {@link DirtyBitmap}. The job first copies every range allocated above
 * {@code base} (a full mirror: the whole chain; a {@code sync=top} mirror or
 * an active commit: the layers above the shared base), then keeps copying
 * dirty granules. When nothing is dirty the job is READY and idles until the
 * guest writes again. {@code complete} ends the run; the completion, in the
 * main loop, drains source and target, copies what is still dirty, flushes
 * the target and <em>pivots</em>: the device's backend now uses the target
 * ({@link io.vblk.block.BlockBackend#replaceRoot}), the filter goes, and the
 * source (for a commit: the layers above base) is released. A cancel while
 * READY leaves the target in sync without a pivot; any other cancel or error
 * removes the filter and leaves the device on the source.
 *
 * <h2>Several copies in flight</h2>
 * A step's range (at most a chunk) is cut into {@link MirrorOp}s of at most
 * a chunk / {@value #MAX_IN_FLIGHT} (and at least a granule), which run at
 * once, each with its own buffer: QEMU's {@code mirror_iteration} issuing
 * several {@code mirror_co_read}s. Their buffers come from a budget of
 * {@code buf-size} bytes in granule slots ({@link MirrorOps}); an op that
 * finds too few free slots waits on an op that holds some and retries when
 * that one ends ({@code mirror_wait_for_free_in_flight_slot}). The step ends
 * when all its ops ended, so a pause point never sees an op in flight. The
 * bitmap is cleared before an op reads, so a guest write during the copy
 * marks the granule again and a later step copies it again.
 *
 * <p>Bug 010 (ce8cabbd17): ops are listed before they hold slots, and
 * before the fix a waiter picked any listed op — itself, or another waiter —
 * and nobody woke it; {@link io.vblk.aio.LegacyBehavior#MIRROR_WAITS_ON_ANY_OP}
 * reverts the fix's flag check. {@link #setOpSeam} is the step seam its
 * scenario arms.
 */
public final class MirrorJob extends CopyJob implements JobFilter.Hooks {
    private static final Logger LOG = LoggerFactory.getLogger(MirrorJob.class);

    /** QEMU's {@code MAX_IN_FLIGHT}: at most this many ops per step. */
    static final int MAX_IN_FLIGHT = 16;

    /**
     * Step seam of bug 010's scenario: named steps of the slot wait, called
     * in the job's context. The seam may reorder the waiters an ended op
     * restarts — the order in which QEMU's woken coroutines run is the
     * scheduler's, not the queue's — and nothing else.
     */
    public interface OpSeam {
        /** Step "wait-for-free-slot": {@code op} found too few free slots and waits on {@code on}. */
        default void waiting(MirrorOp op, MirrorOp on) {
        }

        /** Step "restart-waiters": {@code ended} freed its slots; {@code waiters} retry in this list's order. */
        default void restarting(MirrorOp ended, List<MirrorOp> waiters) {
        }
    }

    /** A mirror to a new target, or the commit of the active layer into its base. */
    public enum Mode { MIRROR, ACTIVE_COMMIT }

    private final Mode mode;
    private final BlockNode source;
    private final BlockNode target;
    private final BlockNode base;
    private final boolean baseMadeWritable;
    private final BlockNode filter;
    private final DirtyBitmap bitmap;
    private final long length;
    private long cursor;
    private long lastDirty;
    private final MirrorOps ops;
    private final int opBytes;
    private int stepOpsLeft;
    private long stepCopied;
    private int stepRet;
    private String stepWhy;
    private volatile OpSeam opSeam;
    private volatile boolean shouldComplete;
    private volatile boolean readyReached;
    private volatile boolean pivoted;

    MirrorJob(BlockJobs jobs, String id, Mode mode, BlockNode source, BlockNode target, BlockNode base,
              boolean baseMadeWritable, JobOptions o) {
        super(jobs, id, mode == Mode.MIRROR ? "mirror" : "commit", source.context(), o);
        this.mode = mode;
        this.source = source;
        this.target = target;
        this.base = base;
        this.baseMadeWritable = baseMadeWritable;
        this.length = source.length();
        this.bitmap = new DirtyBitmap(length, GRANULE);
        int bufSize = o.bufSize() != 0 ? o.bufSize() : chunk;
        this.ops = new MirrorOps(GRANULE, bufSize / GRANULE);
        this.opBytes = ops.maxOpBytes(Math.max(GRANULE, chunk / MAX_IN_FLIGHT));
        use(source, "source");
        if (mode == Mode.ACTIVE_COMMIT) {
            for (BlockNode n : Graph.between(source, base)) {
                use(n, "intermediate");
            }
        }
        use(target, "target");
        setProgressTotal(length);
        this.filter = Graph.insertFilter(jobs.layer(), source, id + "-top", new JobFilter("mirror_top", this));
        if (mode == Mode.MIRROR) {
            filter.attachChild(target, "target", ChildRole.TARGET);
        }
    }

    public Mode mode() {
        return mode;
    }

    public BlockNode source() {
        return source;
    }

    public BlockNode target() {
        return target;
    }

    public boolean isPivoted() {
        return pivoted;
    }

    public long dirtyBytes() {
        return bitmap.dirtyBytes();
    }

    /** Arms (or with null disarms) bug 010's step seam. */
    public void setOpSeam(OpSeam seam) {
        opSeam = seam;
    }

    @Override
    protected void iterate() {
        setProgressTotal(progressCurrent() + bitmap.dirtyBytes() + Math.max(0, length - cursor));
        if (isCancelled()) {
            boolean graceful = readyReached && !isForceCancelled();
            finish(graceful ? 0 : -Errno.ECANCELED, "cancelled", graceful);
            return;
        }
        // what is not allocated above base reads the same in the target already: base's data, the shared
        // backing file, or zeroes
        cursor = scanToCopy(cursor, length, (off, n, pnum) -> Graph.isAllocatedAbove(source, base, off, n, pnum));
        if (cursor < length) {
            long n = scannedBytes();
            bitmap.clearWithin(cursor, n); // this copy reads their current data; a granule it only cuts stays dirty
            long at = cursor;
            cursor += n;
            copyStep(at, n);
            return;
        }
        if (shouldComplete && readyReached) {
            // The completion copies what is still dirty with the source drained (prepare): waiting here for a
            // moment with nothing dirty would never end under a guest that writes faster than the copy.
            finish(0);
            return;
        }
        long off = bitmap.nextDirty(lastDirty);
        if (off >= 0) {
            long n = bitmap.runLength(off, chunk);
            bitmap.clear(off, n);
            lastDirty = off + n;
            copyStep(off, n);
            return;
        }
        readyReached = true;
        transitionToReady();
        setProgressTotal(progressCurrent());
        if (shouldComplete) {
            finish(0);
            return;
        }
        idle();
    }

    /**
     * One step: [offset, offset+bytes) cut into ops, all listed first and
     * then started in order (QEMU's {@code mirror_perform} for each); the
     * step ends when the last one ended.
     */
    private void copyStep(long offset, long bytes) {
        List<MirrorOp> step = new ArrayList<>();
        for (long o = offset; o < offset + bytes; o += opBytes) {
            step.add(ops.register(o, (int) Math.min(opBytes, offset + bytes - o)));
        }
        stepOpsLeft = step.size();
        stepCopied = 0;
        stepRet = 0;
        stepWhy = null;
        for (MirrorOp op : step) {
            coRead(op);
        }
    }

    /** QEMU's {@code mirror_co_read}: take slots (or wait on an op that frees some), then read and write. */
    private void coRead(MirrorOp op) {
        if (!ops.tryTake(op)) {
            MirrorOp on = ops.pickToWaitOn(op, context().legacy());
            OpSeam seam = opSeam;
            if (seam != null) {
                seam.waiting(op, on);
            }
            return;
        }
        copy(source, target, op.offset(), op.bytes(), op.buffer(), op.iov(), () -> true,
                (ret, w) -> opDone(op, ret, w));
    }

    /**
     * An op ended; {@code written} says whether its read succeeded (so a
     * failure was the target's write). A failed range is dirty again (QEMU's
     * {@code mirror_read_complete}/{@code mirror_write_complete}); the
     * source's or target's error policy decides whether the job fails once
     * the step ended, or goes on — having paused first for STOP — and copies
     * it again later. Its slots are free: the ops that waited on it retry.
     */
    private void opDone(MirrorOp op, int ret, boolean written) {
        List<MirrorOp> retry = ops.release(op);
        if (ret < 0) {
            bitmap.set(op.offset(), op.bytes());
            boolean read = !written;
            BlockErrorAction a = errorAction(read ? options().onSourceError() : options().onTargetError(), read, ret);
            if (a == BlockErrorAction.REPORT && stepRet == 0) {
                stepRet = ret;
                stepWhy = "copying offset " + op.offset() + " failed: " + Errno.name(-ret);
            }
        } else {
            addProgress(op.bytes());
            stepCopied += op.bytes();
        }
        boolean last = --stepOpsLeft == 0;
        OpSeam seam = opSeam;
        if (seam != null && !retry.isEmpty()) {
            seam.restarting(op, retry);
        }
        for (MirrorOp w : retry) {
            coRead(w);
        }
        if (last) {
            if (stepRet < 0) {
                finish(stepRet, stepWhy, false);
            } else {
                stepDone(stepCopied);
            }
        }
    }

    /**
     * Unwind of bug 010's diagnosed hang (scenarios only): every op waiting
     * for a slot retries now, as nobody else would. Job context.
     */
    public void restartSlotWaiters() {
        for (MirrorOp w : ops.releaseAllWaiters()) {
            coRead(w);
        }
    }

    // ------------------------------------------------------------------ guest writes (filter hooks, job context)

    @Override
    public void beforeWrite(long offset, long bytes, Runnable go) {
        go.run();
    }

    @Override
    public void afterWrite(long offset, long bytes, int ret) {
        bitmap.set(offset, bytes); // the progress total follows in iterate: counting the bitmap is not per-write work
        enter(); // an idle READY job copies it
    }

    // ------------------------------------------------------------------ completion (main loop)

    @Override
    protected void onComplete() {
        if (!readyReached) {
            throw new JobException("job '" + id() + "' is not ready yet");
        }
        shouldComplete = true;
        enter();
    }

    /** QEMU's {@code mirror_exit_common}: final copy under drained sections, then the pivot. */
    @Override
    protected int prepare() {
        if (isCancelled()) {
            return 0; // cancelled while ready: in sync, but the device stays on the source
        }
        try (DrainedSection ds = source.drainedBegin(); DrainedSection dt = target.drainedBegin()) {
            long off;
            while ((off = bitmap.nextDirty(0)) >= 0) {
                long n = bitmap.runLength(off, chunk);
                bitmap.clear(off, n);
                int r = copySync(source, target, off, (int) n);
                if (r < 0) {
                    bitmap.set(off, n);
                    return r;
                }
                addProgress(n);
            }
            int r = target.flushSync();
            if (r < 0) {
                return r;
            }
            Graph.replaceNode(filter, target);
            pivoted = true;
            LOG.debug("{} '{}': the device now uses '{}'", type(), id(), target.name());
        }
        Graph.releaseFilter(filter);
        return 0;
    }

    @Override
    protected void clean() {
        if (!pivoted) {
            Graph.removeFilter(filter);
            if (baseMadeWritable) {
                BlockReopen.setReadOnly(base, true);
            }
        }
    }

    @Override
    protected String describeDriver() {
        return mode + " source='" + source.name() + "' target='" + target.name() + "' cursor=" + cursor + " dirty="
                + bitmap.dirtyBytes() + " " + opsForDump() + (readyReached ? " ready" : "") + (shouldComplete ? " completing" : "")
                + (pivoted ? " pivoted" : "");
    }

    /** The ops for a dump from another thread: the list is the job context's, so a racing change is tolerated. */
    private String opsForDump() {
        try {
            return ops.toString();
        } catch (RuntimeException e) {
            return "ops_in_flight=(changing)";
        }
    }
}
