package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.Errno;

import java.nio.file.Path;

/**
 * The driver of one node: QEMU's {@code BlockDriver} together with the
 * node's driver state ({@code bs->opaque}). One instance per node.
 *
 * <p>Requests arrive from {@link BlockNode}, which has already validated
 * them and counts them in flight; a driver calls the completion exactly once,
 * in the node's home context (it may do so before the submitting call
 * returns). Drivers never block the event loop: blocking work goes to the
 * machine's {@link io.vblk.aio.ThreadPool}.
 */
public abstract class BlockDriver {
    private BlockNode node;

    /** Binds the driver to its node; called once by {@link BlockNode}'s constructor. */
    final void bind(BlockNode n) {
        if (node != null) {
            throw new IllegalStateException("driver already bound to " + node.name());
        }
        node = n;
    }

    protected final BlockNode node() {
        return node;
    }

    /** QEMU's {@code format_name}: "file", "raw", "null", "blkdebug", "qcow2". */
    public abstract String formatName();

    /** Length of the node's visible data in bytes. */
    public abstract long length();

    /** Required alignment of offsets and lengths in bytes (1 for byte-granular). */
    public int requestAlignment() {
        return 1;
    }

    public abstract void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb);

    public abstract void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb);

    public abstract void flush(BlockCompletion cb);

    /** Deallocates a range; drivers that cannot answer -ENOTSUP (discard is advisory). */
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        cb.complete(-Errno.ENOTSUP);
    }

    /**
     * Writes zeroes efficiently; -ENOTSUP makes {@link BlockNode} fall back to
     * writing a zero buffer (unless {@link BlockFlags#NO_FALLBACK}).
     */
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        cb.complete(-Errno.ENOTSUP);
    }

    /** Which layer holds [offset, offset+bytes); protocol drivers say "data, allocated". */
    public BlockStatus blockStatus(long offset, long bytes) {
        return BlockStatus.data(bytes);
    }

    /**
     * Sets the node's length to {@code newLength} bytes: QEMU's
     * {@code .bdrv_co_truncate}, reached from QMP {@code block_resize}
     * through {@link BlockNode#truncate}, which has drained the node and runs
     * in its home context (or under its lock). 0 or -errno. A driver without
     * the callback refuses with QEMU's words and its own name.
     */
    public int truncate(long newLength) {
        throw new BlockException("Image format driver does not support resize (node '" + node.name()
                + "', driver " + formatName() + ")");
    }

    /**
     * A debug event a parent raised on this node: QEMU's
     * {@code .bdrv_debug_event} (formats call {@code BLKDBG_EVENT} on their
     * file child, e.g. "read_aio" before a data read). Only blkdebug reacts;
     * every other driver ignores it. The node's home context.
     */
    public void debugEvent(String event) {
    }

    /** Whether this format can have a backing child (qcow2 can). */
    public boolean supportsBacking() {
        return false;
    }

    /**
     * The host file the node's data lives in, or null: QEMU's
     * {@code bs->filename}. A protocol driver on a host file answers its path;
     * by default a node answers what its protocol ({@link ChildRole#FILE})
     * child answers, as a format's filename is its file's.
     */
    public Path imagePath() {
        BlockNode f = node == null ? null : node.child(ChildRole.FILE);
        return f == null ? null : f.driver().imagePath();
    }

    /**
     * Records {@code backingFile} (format {@code backingFormat}; null: none) as
     * the node's backing file in its image metadata, after a stream or commit
     * changed the chain: QEMU's {@code .bdrv_change_backing_file} callback. The
     * node is drained and writable; runs in its home context (or under its
     * lock), waiting synchronously. Returns 0 or -errno; a driver without the
     * callback refuses with a {@link BlockException}.
     */
    public int changeBackingFile(String backingFile, String backingFormat) {
        throw new BlockException("'" + node.name() + "' (" + formatName()
                + ") cannot record a backing file: not supported by driver " + formatName());
    }

    /**
     * Whether switching the node to {@code readOnly} must change the driver's
     * own state (a file's descriptor), beyond the node's flag: QEMU's
     * {@code .bdrv_reopen_prepare} having work to do. Default: no.
     */
    public boolean needsReopen(boolean readOnly) {
        return false;
    }

    /**
     * Switches the driver's own state to {@code readOnly}: QEMU's
     * {@code .bdrv_reopen_prepare} and {@code .bdrv_reopen_commit} in one
     * step ({@link BlockReopen} undoes a partial reopen by reopening back).
     * The node is drained. 0 or -errno, leaving the old state in use on
     * failure. Default: nothing to switch.
     */
    public int reopen(boolean readOnly) {
        return 0;
    }

    /** The node is being moved out of {@code ctx}: release per-context resources. Drained. */
    public void detachAioContext(AioContext ctx) {
    }

    /** The node arrived in {@code ctx}: set up per-context resources. Drained. */
    public void attachAioContext(AioContext ctx) {
    }

    /** QEMU's {@code bdrv_drain_begin} driver hook; runs in the node's home context. */
    public void drainBegin() {
    }

    /** QEMU's {@code bdrv_drain_end} driver hook; runs in the node's home context. */
    public void drainEnd() {
    }

    /** Makes on-disk state complete and consistent before another process takes over (migration). */
    public int inactivate() {
        return 0;
    }

    /** Re-reads metadata another process may have changed. */
    public int activate() {
        return 0;
    }

    /** Frees the driver's resources; no request is in flight. */
    public void close() {
    }

    /** Driver details for dumps. */
    public String describe() {
        return formatName();
    }
}
