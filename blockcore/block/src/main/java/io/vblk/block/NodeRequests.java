package io.vblk.block;

import io.vblk.aio.AioWait;
import io.vblk.aio.Errno;

import java.util.ArrayDeque;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The request entry points of one {@link BlockNode}: QEMU's block/io.c
 * {@code bdrv_co_preadv}/{@code pwritev}/{@code flush}/{@code pdiscard}/
 * {@code pwrite_zeroes} with their checks ({@code bdrv_check_request},
 * read-only and inactive nodes), the in-flight accounting a drain waits for
 * ({@code bdrv_inc_in_flight}/{@code bdrv_dec_in_flight}), the write-zeroes
 * fallback to a zero buffer, and the synchronous wrappers of the control
 * path ({@code bdrv_pread}, {@code bdrv_flush}).
 *
 * <p>The request path allocates nothing: each request is wrapped in a pooled
 * {@link NodeRequest}. Everything runs in the node's home context.
 */
final class NodeRequests {
    /** Trace points keep the node's logger name. */
    private static final Logger LOG = LoggerFactory.getLogger(BlockNode.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    private final BlockNode node;
    private final BlockDriver driver;
    private final ArrayDeque<NodeRequest> pool = new ArrayDeque<>();

    NodeRequests(BlockNode node, BlockDriver driver) {
        this.node = node;
        this.driver = driver;
    }

    void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        int err = check(BlockNode.OP_READ, offset, bytes, qiov);
        if (err != 0) {
            cb.complete(err);
            return;
        }
        NodeRequest r = take(BlockNode.OP_READ, offset, bytes, flags, cb);
        driver.preadv(offset, bytes, qiov, flags, r);
    }

    void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        int err = check(BlockNode.OP_WRITE, offset, bytes, qiov);
        if (err != 0) {
            cb.complete(err);
            return;
        }
        NodeRequest r = take(BlockNode.OP_WRITE, offset, bytes, flags, cb);
        driver.pwritev(offset, bytes, qiov, flags, r);
    }

    void flush(BlockCompletion cb) {
        int err = check(BlockNode.OP_FLUSH, 0, 0, null);
        if (err != 0) {
            cb.complete(err);
            return;
        }
        NodeRequest r = take(BlockNode.OP_FLUSH, 0, 0, 0, cb);
        driver.flush(r);
    }

    void pdiscard(long offset, long bytes, BlockCompletion cb) {
        int err = check(BlockNode.OP_DISCARD, offset, bytes, null);
        if (err != 0) {
            cb.complete(err);
            return;
        }
        NodeRequest r = take(BlockNode.OP_DISCARD, offset, bytes, 0, cb);
        driver.pdiscard(offset, bytes, r);
    }

    void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        int err = check(BlockNode.OP_WRITE_ZEROES, offset, bytes, null);
        if (err != 0) {
            cb.complete(err);
            return;
        }
        NodeRequest r = take(BlockNode.OP_WRITE_ZEROES, offset, bytes, flags, cb);
        driver.pwriteZeroes(offset, bytes, flags, r);
    }

    /** Validates a request; 0 or -errno. Requests of a misbehaving caller fail cleanly, never throw. */
    private int check(int op, long offset, long bytes, IoVec qiov) {
        node.checkOwned(BlockNode.opName(op));
        if (node.isClosed()) {
            return -Errno.ENOMEDIUM;
        }
        if (offset < 0 || bytes < 0 || offset + bytes < 0) {
            return -Errno.EINVAL;
        }
        int align = driver.requestAlignment();
        if (align > 1 && op != BlockNode.OP_FLUSH && ((offset | bytes) & (align - 1)) != 0) {
            return -Errno.EINVAL;
        }
        if (qiov != null && qiov.size() < bytes) {
            return -Errno.EINVAL;
        }
        if (op != BlockNode.OP_READ && op != BlockNode.OP_FLUSH) {
            if (node.isReadOnly()) {
                return -Errno.EROFS;
            }
            if (node.isInactive()) {
                return -Errno.EPERM;
            }
        }
        if (op != BlockNode.OP_FLUSH && offset + bytes > driver.length() && !(driver instanceof GrowableDriver)) {
            return -Errno.EINVAL;
        }
        return 0;
    }

    private NodeRequest take(int op, long offset, long bytes, int flags, BlockCompletion cb) {
        NodeRequest r = pool.pollFirst();
        if (r == null) {
            r = new NodeRequest();
        }
        r.op = op;
        r.offset = offset;
        r.bytes = bytes;
        r.flags = flags;
        r.cb = cb;
        node.incInFlight();
        if (TRACE) {
            LOG.trace("bdrv_co_{} node={} offset={} bytes={}", BlockNode.opName(op), node.name(), offset, bytes);
        }
        return r;
    }

    /** Per-request completion wrapper: accounts the request and falls back for write-zeroes. Pooled. */
    private final class NodeRequest implements BlockCompletion {
        int op;
        long offset;
        long bytes;
        int flags;
        BlockCompletion cb;

        @Override
        public void complete(int ret) {
            if (op == BlockNode.OP_WRITE_ZEROES && ret == -Errno.ENOTSUP && (flags & BlockFlags.NO_FALLBACK) == 0) {
                op = BlockNode.OP_WRITE; // the driver cannot: write a buffer of zeroes instead
                driver.pwritev(offset, bytes, ZeroBuffer.ioVec(bytes), flags & ~BlockFlags.MAY_UNMAP, this);
                return;
            }
            if (op == BlockNode.OP_DISCARD && ret == -Errno.ENOTSUP) {
                ret = 0; // discard is advisory
            }
            BlockCompletion c = cb;
            if (TRACE) {
                LOG.trace("bdrv_co_{}_done node={} offset={} ret={}", BlockNode.opName(op), node.name(), offset, ret);
            }
            cb = null;
            pool.addFirst(this);
            node.decInFlight();
            c.complete(ret);
        }
    }

    /**
     * A request's completion the control path waits for with
     * {@link AioWait#pollWhile} (QEMU's synchronous {@code bdrv_pread} and
     * friends): main loop holding the home context's lock once, or the home
     * thread; never from a request path.
     */
    static final class SyncCompletion implements BlockCompletion {
        private volatile boolean done;
        private volatile int ret;

        @Override
        public void complete(int r) {
            ret = r;
            done = true;
        }

        int await(BlockNode n) {
            AioWait.pollWhile(n.context(), () -> !done);
            return ret;
        }
    }
}
