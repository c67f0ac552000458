package io.vblk.job;

import io.vblk.aio.Errno;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;

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
 */
public final class MirrorJob extends CopyJob implements JobFilter.Hooks {
    private static final Logger LOG = LoggerFactory.getLogger(MirrorJob.class);

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
    private long copyLen;
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
            copyLen = n;
            long at = cursor;
            cursor += n;
            copy(source, target, at, (int) n, () -> true, (ret, w) -> copyDone(ret, w, at));
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
            copyLen = n;
            copy(source, target, off, (int) n, () -> true, (ret, w) -> copyDone(ret, w, off));
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
     * A copy step ended; {@code written} says whether its read succeeded (so
     * a failure was the target's write). A failed range is dirty again
     * (QEMU's {@code mirror_read_complete}/{@code mirror_write_complete}); the
     * source's or target's error policy decides whether the job fails, or
     * goes on — having paused first for STOP — and copies it again later.
     */
    private void copyDone(int ret, boolean written, long offset) {
        if (ret < 0) {
            bitmap.set(offset, copyLen);
            boolean read = !written;
            BlockErrorAction a = errorAction(read ? options().onSourceError() : options().onTargetError(), read, ret);
            if (a == BlockErrorAction.REPORT) {
                finish(ret, "copying offset " + offset + " failed: " + Errno.name(-ret), false);
            } else {
                stepDone(0);
            }
            return;
        }
        addProgress(copyLen);
        stepDone(copyLen);
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
                + bitmap.dirtyBytes() + (readyReached ? " ready" : "") + (shouldComplete ? " completing" : "")
                + (pivoted ? " pivoted" : "");
    }
}
