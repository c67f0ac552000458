package io.vblk.job;

import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;
import io.vblk.block.IoVec;

/**
 * The filter node a job inserts between the device and the node it works on:
 * QEMU's {@code mirror_top} (block/mirror.c) for mirror and active commit,
 * and the {@code copy-on-read} filter block-stream inserts. Every request is
 * passed to the {@link ChildRole#FILTERED} child unchanged; writes, zero
 * writes and discards are shown to the job first ({@link Hooks#beforeWrite},
 * which may hold them back) and after completion ({@link Hooks#afterWrite}).
 * A mirror also holds its target as a {@link ChildRole#TARGET} child, so the
 * target moves between AioContexts with the source.
 */
public final class JobFilter extends BlockDriver {
    /** What the job sees of guest writes; called in the node's home context. */
    public interface Hooks {
        /** A write to [offset, offset+bytes) is about to be passed down; run {@code go} when it may proceed. */
        void beforeWrite(long offset, long bytes, Runnable go);

        /** That write completed with {@code ret}. */
        void afterWrite(long offset, long bytes, int ret);
    }

    private final String format;
    private final Hooks hooks;

    JobFilter(String format, Hooks hooks) {
        this.format = format;
        this.hooks = hooks;
    }

    private BlockNode child() {
        return node().child(ChildRole.FILTERED);
    }

    @Override
    public String formatName() {
        return format;
    }

    @Override
    public long length() {
        return child().length();
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        child().preadv(offset, bytes, qiov, flags, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        hooks.beforeWrite(offset, bytes, () -> child().pwritev(offset, bytes, qiov, flags, ret -> {
            hooks.afterWrite(offset, bytes, ret);
            cb.complete(ret);
        }));
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        hooks.beforeWrite(offset, bytes, () -> child().pwriteZeroes(offset, bytes, flags, ret -> {
            hooks.afterWrite(offset, bytes, ret);
            cb.complete(ret);
        }));
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        hooks.beforeWrite(offset, bytes, () -> child().pdiscard(offset, bytes, ret -> {
            hooks.afterWrite(offset, bytes, ret);
            cb.complete(ret);
        }));
    }

    @Override
    public void flush(BlockCompletion cb) {
        child().flush(cb);
    }

    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        return child().blockStatus(offset, bytes);
    }

    @Override
    public String describe() {
        BlockNode c = node().child(ChildRole.FILTERED);
        return format + " over '" + (c == null ? "?" : c.name()) + "'";
    }
}
