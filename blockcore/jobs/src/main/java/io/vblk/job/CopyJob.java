package io.vblk.job;

import com.sun.jna.Memory;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.util.function.BooleanSupplier;

/**
 * What stream, commit and mirror share: one bounce buffer of the job's chunk
 * size and a copy step "read a range from one node, then write it to
 * another", accounted as the job's own I/O (QEMU's {@code stream_populate},
 * {@code commit_populate}, {@code mirror_co_read}/{@code mirror_write_complete}).
 * Steps run one at a time, so two copies of one range are never in flight
 * (a mirror step splits its range into several operations in flight at
 * once, which never overlap).
 * The scan for the next range to copy ({@link #scanToCopy}) is shared too.
 */
public abstract class CopyJob extends Job {
    /** Granule of dirty tracking and of copy alignment. */
    static final int GRANULE = 65536;

    private final Memory buf;
    private final IoVec iov = new IoVec(1);
    protected final int chunk;
    private volatile long copied;
    private final long[] pnum = new long[1];
    private long scanned;

    /**
     * Whether [offset, offset+bytes) needs copying, and for how many bytes
     * from offset the answer holds (written to {@code pnum[0]}, at most
     * {@code bytes}): a job's use of {@link Graph#isAllocatedAbove}.
     */
    @FunctionalInterface
    interface NeedsCopy {
        boolean test(long offset, long bytes, long[] pnum);
    }

    /** The end of one copy step: {@code written} false when the write was skipped (see {@link #copy}). */
    @FunctionalInterface
    interface CopyDone {
        void done(int ret, boolean written);
    }

    CopyJob(BlockJobs jobs, String id, String type, AioContext ctx, JobOptions options) {
        super(jobs, id, type, ctx, options);
        this.chunk = options.chunkBytes();
        this.buf = new Memory(chunk);
    }

    /**
     * Reads [offset, offset+bytes) of {@code from}, then — if {@code beforeWrite}
     * still agrees — writes it to {@code to}, then calls {@code done}. Job context.
     */
    final void copy(BlockNode from, BlockNode to, long offset, int bytes, BooleanSupplier beforeWrite, CopyDone done) {
        copy(from, to, offset, bytes, buf, iov, beforeWrite, done);
    }

    /**
     * The same through a caller's buffer and vector: a job with several
     * copies in flight at once (the mirror's {@link MirrorOp}s) gives each
     * its own, so their data never share memory. Job context.
     */
    final void copy(BlockNode from, BlockNode to, long offset, int bytes, Memory buf, IoVec iov,
                    BooleanSupplier beforeWrite, CopyDone done) {
        iov.reset();
        iov.add(Memory.nativeValue(buf), bytes);
        ioStart();
        from.preadv(offset, bytes, iov, 0, r -> {
            ioDone();
            if (r < 0) {
                done.done(r, false);
                return;
            }
            if (!beforeWrite.getAsBoolean()) {
                done.done(0, false);
                return;
            }
            ioStart();
            to.pwritev(offset, bytes, iov, 0, w -> {
                ioDone();
                if (w == 0) {
                    copied += bytes;
                }
                done.done(w, true);
            });
        });
    }

    /** Bytes this job has written to its destination so far. */
    public final long copiedBytes() {
        return copied;
    }

    /** The same, waiting for it (completion in the main loop, holding the context lock once). */
    final int copySync(BlockNode from, BlockNode to, long offset, int bytes) {
        iov.reset();
        iov.add(Memory.nativeValue(buf), bytes);
        int r = from.preadSync(offset, bytes, iov);
        if (r < 0) {
            return r;
        }
        r = to.pwriteSync(offset, bytes, iov, 0);
        if (r == 0) {
            copied += bytes;
        }
        return r;
    }

    /** The copy unit at {@code offset}: up to a chunk, ending on a granule boundary when it can. */
    final long stepBytes(long offset, long length) {
        long end = Math.min(length, offset + chunk);
        return end - offset;
    }

    /**
     * The allocated-range scan of stream, commit and mirror (the loops of
     * QEMU's {@code stream_run}, {@code commit_run} and
     * {@code mirror_dirty_init} over {@code bdrv_is_allocated_above}): from
     * {@code from}, ranges of at most a step that need no copy are skipped and
     * counted as progress. Returns the offset of the first range that needs
     * copying, its length left in {@link #scannedBytes()}; or {@code length}
     * when nothing is left. Job context.
     */
    final long scanToCopy(long from, long length, NeedsCopy needsCopy) {
        long cursor = from;
        while (cursor < length) {
            long n = stepBytes(cursor, length);
            boolean copy = needsCopy.test(cursor, n, pnum);
            n = pnum[0];
            if (copy) {
                scanned = n;
                return cursor;
            }
            cursor += n;
            addProgress(n);
        }
        scanned = 0;
        return cursor;
    }

    /** The length of the range {@link #scanToCopy} found. */
    final long scannedBytes() {
        return scanned;
    }
}
