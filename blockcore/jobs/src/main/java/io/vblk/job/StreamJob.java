package io.vblk.job;

import io.vblk.aio.Errno;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code block-stream} (QEMU's block/stream.c): copies into {@code top}
 * every range its backing chain holds above {@code base}, then makes
 * {@code base} top's backing file (none when base is null) and drops the
 * layers in between.
 *
 * <p>A {@code copy-on-read} filter ({@link JobFilter}) sits between the
 * device and {@code top} while the job runs, so guest writes and the job's
 * copies of the same range never cross: a guest write that arrives while the
 * job reads a range makes the job drop that copy and look again (the guest's
 * write now owns the range); one that arrives while the job writes the range
 * waits until that write completed; and the job does not start copying a
 * range a guest write is still writing. (QEMU gets the same from
 * serialising requests.)
 */
public final class StreamJob extends CopyJob implements JobFilter.Hooks {
    private static final Logger LOG = LoggerFactory.getLogger(StreamJob.class);

    private enum Phase { NONE, READ, WRITE }

    private final BlockNode top;
    private final BlockNode base;
    private final boolean madeWritable;
    private final BlockNode filter;
    private final long length;
    private long cursor;
    /** The first error an on-error=ignore stream went past: the run ends with it (stream_run). */
    private int ignoredError;

    private Phase phase = Phase.NONE;
    private long copyOff;
    private long copyLen;
    private boolean conflict;
    private boolean waitingForGuest; // idle until a guest write over the range it wants completes
    private final List<long[]> guestWrites = new ArrayList<>();
    private final ArrayDeque<Runnable> held = new ArrayDeque<>();
    private long retries;

    StreamJob(BlockJobs jobs, String id, BlockNode top, BlockNode base, boolean madeWritable, JobOptions o) {
        super(jobs, id, "stream", top.context(), o);
        this.top = top;
        this.base = base;
        this.madeWritable = madeWritable;
        this.length = top.length();
        use(top, "top");
        for (BlockNode n : Graph.between(top, base)) {
            use(n, "intermediate");
        }
        setProgressTotal(length);
        this.filter = Graph.insertFilter(jobs.layer(), top, id + "-cor", new JobFilter("copy-on-read", this));
    }

    public BlockNode top() {
        return top;
    }

    public BlockNode base() {
        return base;
    }

    /** How often a copy was dropped and looked at again because a guest write touched its range. */
    public long retries() {
        return retries;
    }

    @Override
    protected void iterate() {
        if (isCancelled()) {
            finish(-Errno.ECANCELED, "cancelled", false);
            return;
        }
        cursor = scanToCopy(cursor, length, this::needsCopy);
        if (cursor < length) {
            long n = scannedBytes();
            if (guestWriteOverlaps(cursor, n)) {
                retries++;
                waitingForGuest = true;
                idle(); // a guest write owns this range right now: its completion wakes the job (afterWrite)
                return;
            }
            phase = Phase.READ;
            copyOff = cursor;
            copyLen = n;
            conflict = false;
            copy(top, top, cursor, (int) n, this::beforeCopyWrite, this::copyDone);
            return;
        }
        finish(ignoredError, ignoredError < 0 ? "an ignored error: " + Errno.name(-ignoredError) : null, false);
    }

    /** What top does not hold itself but a backing file above base does (stream_run: is_allocated, then _above). */
    private boolean needsCopy(long off, long bytes, long[] pnum) {
        long n = bytes;
        BlockStatus st = top.blockStatus(off, n);
        if (st.bytes() > 0) {
            n = Math.min(n, st.bytes());
        }
        pnum[0] = n;
        if (st.allocated()) {
            return false;
        }
        BlockNode b = Graph.backing(top);
        return b != null && b != base && Graph.isAllocatedAbove(b, base, off, n, pnum);
    }

    private void advance(long n) {
        cursor += n;
        addProgress(n);
    }

    private boolean beforeCopyWrite() {
        if (conflict) {
            phase = Phase.NONE;
            releaseHeld();
            return false;
        }
        phase = Phase.WRITE;
        return true;
    }

    private void copyDone(int ret, boolean written) {
        phase = Phase.NONE;
        releaseHeld();
        if (ret < 0) {
            // stream_run: every error counts as a read error; STOP retries the range once resumed, IGNORE goes on
            // past it and the run fails at its end with the first error
            BlockErrorAction a = errorAction(options().onSourceError(), true, ret);
            if (a == BlockErrorAction.REPORT) {
                finish(ret, "copying offset " + copyOff + " failed: " + Errno.name(-ret), false);
                return;
            }
            if (a == BlockErrorAction.STOP) {
                stepDone(0);
                return;
            }
            if (ignoredError == 0) {
                ignoredError = ret;
            }
            advance(copyLen);
            if (cursor >= length) {
                finish(ignoredError, "copying offset " + copyOff + " failed: " + Errno.name(-ignoredError), false);
            } else {
                stepDone(0);
            }
            return;
        }
        if (!written) {
            retries++;
            stepDone(0);
            return;
        }
        advance(copyLen);
        if (cursor >= length) {
            // the last copy ends the run without another pause point, as stream_run's loop does
            finish(ignoredError, ignoredError < 0 ? "an ignored error: " + Errno.name(-ignoredError) : null, false);
        } else {
            stepDone(copyLen);
        }
    }

    // ------------------------------------------------------------------ guest writes (filter hooks, job context)

    @Override
    public void beforeWrite(long offset, long bytes, Runnable go) {
        if (phase == Phase.WRITE && overlaps(offset, bytes, copyOff, copyLen)) {
            held.add(() -> admit(offset, bytes, go));
            return;
        }
        if (phase == Phase.READ && overlaps(offset, bytes, copyOff, copyLen)) {
            conflict = true;
        }
        admit(offset, bytes, go);
    }

    private void admit(long offset, long bytes, Runnable go) {
        guestWrites.add(new long[] {offset, bytes});
        go.run();
    }

    @Override
    public void afterWrite(long offset, long bytes, int ret) {
        for (Iterator<long[]> it = guestWrites.iterator(); it.hasNext();) {
            long[] w = it.next();
            if (w[0] == offset && w[1] == bytes) {
                it.remove();
                break;
            }
        }
        if (waitingForGuest) {
            waitingForGuest = false;
            enter(); // iterate looks at the range again
        }
    }

    private void releaseHeld() {
        Runnable r;
        while ((r = held.pollFirst()) != null) {
            r.run();
        }
    }

    private boolean guestWriteOverlaps(long offset, long bytes) {
        for (long[] w : guestWrites) {
            if (overlaps(offset, bytes, w[0], w[1])) {
                return true;
            }
        }
        return false;
    }

    static boolean overlaps(long a, long an, long b, long bn) {
        return a < b + bn && b < a + an;
    }

    // ------------------------------------------------------------------ completion (main loop)

    /** QEMU's {@code stream_prepare}: the base becomes top's backing file; the layers in between are dropped. */
    @Override
    protected int prepare() {
        try (DrainedSection d = top.drainedBegin()) {
            BlockChild e = top.childEdge(ChildRole.BACKING);
            if (e == null || e.node() == base) {
                return 0;
            }
            int r = Graph.changeBackingFile(top, base);
            if (r < 0) {
                return r;
            }
            if (base == null) {
                top.detachChild(e);
            } else {
                top.replaceChild(e, base);
            }
            LOG.debug("stream '{}': '{}' now backed by {}", id(), top.name(), base == null ? "nothing" : "'" + base.name() + "'");
        }
        return 0;
    }

    @Override
    protected void clean() {
        Graph.removeFilter(filter);
        if (madeWritable) {
            BlockReopen.setReadOnly(top, true);
        }
    }

    @Override
    protected String describeDriver() {
        return "top='" + top.name() + "' base=" + (base == null ? "none" : "'" + base.name() + "'") + " cursor=" + cursor
                + " phase=" + phase + " guest_writes=" + guestWrites.size() + " held=" + held.size() + " retries=" + retries;
    }
}
