package io.vblk.job;

import io.vblk.aio.Errno;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code block-commit} of a layer that is not the active one (QEMU's
 * block/commit.c): copies every range allocated in {@code top} or a layer
 * between it and {@code base} down into {@code base}, then points top's
 * overlay at {@code base} (rewriting its header) and drops the layers from
 * top down to above base. The guest writes only the active layer above, so
 * nothing it does touches the ranges being copied; {@code base} is made
 * writable for the job and read-only again afterwards. Committing the active
 * layer is a {@link MirrorJob} in commit mode.
 */
public final class CommitJob extends CopyJob {
    private static final Logger LOG = LoggerFactory.getLogger(CommitJob.class);

    private final BlockNode top;
    private final BlockNode base;
    private final BlockNode overlay;
    private final boolean baseMadeWritable;
    private final boolean overlayMadeWritable;
    private final long length;
    private long cursor;
    private long copyLen;

    CommitJob(BlockJobs jobs, String id, BlockNode top, BlockNode base, BlockNode overlay, boolean baseMadeWritable,
              boolean overlayMadeWritable, JobOptions o) {
        super(jobs, id, "commit", top.context(), o);
        this.top = top;
        this.base = base;
        this.overlay = overlay;
        this.baseMadeWritable = baseMadeWritable;
        this.overlayMadeWritable = overlayMadeWritable;
        this.length = top.length();
        use(top, "top");
        for (BlockNode n : Graph.between(top, base)) {
            use(n, "intermediate");
        }
        use(base, "base");
        use(overlay, "overlay");
        setProgressTotal(length);
    }

    public BlockNode top() {
        return top;
    }

    public BlockNode base() {
        return base;
    }

    @Override
    protected void iterate() {
        if (isCancelled()) {
            finish(-Errno.ECANCELED, "cancelled", false);
            return;
        }
        cursor = scanToCopy(cursor, length, (off, n, pnum) -> Graph.isAllocatedAbove(top, base, off, n, pnum));
        if (cursor < length) {
            copyLen = scannedBytes();
            copy(top, base, cursor, (int) copyLen, () -> true, this::copyDone);
            return;
        }
        finish(0);
    }

    private void copyDone(int ret, boolean written) {
        if (ret < 0) {
            // commit_run: the error policy decides; anything but REPORT retries the same range (STOP once resumed)
            BlockErrorAction a = errorAction(written ? options().onTargetError() : options().onSourceError(), !written,
                    ret);
            if (a == BlockErrorAction.REPORT) {
                finish(ret, "committing offset " + cursor + " failed: " + Errno.name(-ret), false);
            } else {
                stepDone(0);
            }
            return;
        }
        cursor += copyLen;
        addProgress(copyLen);
        if (cursor >= length) {
            finish(0);
        } else {
            stepDone(copyLen);
        }
    }

    /** QEMU's {@code commit_prepare}: the overlay of top now reads from base; top down to above base are dropped. */
    @Override
    protected int prepare() {
        try (DrainedSection d = overlay.drainedBegin()) {
            BlockChild e = overlay.childEdge(ChildRole.BACKING);
            if (e == null || e.node() != top) {
                LOG.error("commit '{}': '{}' no longer has '{}' as its backing file", id(), overlay.name(), top.name());
                return -Errno.EINVAL;
            }
            int r = Graph.changeBackingFile(overlay, base);
            if (r < 0) {
                return r;
            }
            overlay.replaceChild(e, base);
        }
        return 0;
    }

    @Override
    protected void clean() {
        if (baseMadeWritable) {
            BlockReopen.setReadOnly(base, true);
        }
        if (overlayMadeWritable) {
            BlockReopen.setReadOnly(overlay, true);
        }
    }

    @Override
    protected String describeDriver() {
        return "top='" + top.name() + "' base='" + base.name() + "' overlay='" + overlay.name() + "' cursor=" + cursor;
    }
}
