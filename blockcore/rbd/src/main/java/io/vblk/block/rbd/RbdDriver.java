package io.vblk.block.rbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.EventNotifier;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockFlags;
import io.vblk.block.BlockStatus;
import io.vblk.block.IoVec;

import com.sun.jna.Memory;

import io.netty.util.internal.PlatformDependent;

import java.util.ArrayDeque;
import java.util.concurrent.atomic.AtomicReference;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code rbd} protocol driver: a node whose data is a Ceph RBD image,
 * reached through librbd (QEMU's {@code block/rbd.c}, {@code bdrv_rbd}).
 *
 * <p>Requests are submitted in the node's home context with
 * {@code rbd_aio_readv}/{@code rbd_aio_writev} on the caller's own segments
 * (no bounce buffer), {@code rbd_aio_flush}, {@code rbd_aio_discard} and
 * {@code rbd_aio_write_zeroes}. librbd completes them on its own threads and
 * they reach the home context one of two ways ({@link RbdCompletionMode}):
 * with {@code CALLBACK}, {@link RbdCompletions} pushes each finished request
 * onto this driver's lock-free stack and schedules one bottom half in the home
 * context, which completes the whole batch there (QEMU's
 * {@code qemu_rbd_completion_cb} → {@code aio_bh_schedule_oneshot} →
 * {@code qemu_rbd_completion_bh}); with {@code EVENTFD}, librbd signals an
 * eventfd the home context watches, and its handler takes the completions
 * with {@code rbd_poll_io_events}. Nothing on librbd's thread touches the
 * node (DESIGN rules 2 and 10). A context move happens drained, so nothing is
 * pending when the BH or fd handler moves to the new context.
 */
public final class RbdDriver extends BlockDriver {
    private static final Logger LOG = LoggerFactory.getLogger(RbdDriver.class);
    /** QEMU's {@code QEMU_RBD_EXIT_DIFF_ITERATE2}: the diff callback's "first run found, stop". */
    private static final int EXIT_DIFF_ITERATE2 = -9000;

    private RbdConnection conn;
    private final RbdOptions options;
    private long size;
    /** Idle requests; home context only. */
    private final ArrayDeque<RbdRequest> pool = new ArrayDeque<>();
    private final ArrayDeque<RbdRequest> all = new ArrayDeque<>();
    /** Requests librbd finished, newest first: pushed by librbd's threads, taken whole by the BH. */
    private final AtomicReference<RbdRequest> completedStack = new AtomicReference<>();
    /** The completion BH of the current home context; replaced, drained, on a context move. */
    private volatile BottomHalf completionBh;
    private long submitted;
    private long completedCount;
    private final DiffState diff = new DiffState();
    private final RbdCompletionMode mode;
    /** EVENTFD mode: the eventfd librbd signals, watched by {@link #handler} in the home context. */
    private EventNotifier notifier;
    private AioHandler handler;
    /** EVENTFD mode: room for {@link #EVENT_BATCH} {@code rbd_completion_t}s taken by one poll. */
    private static final int EVENT_BATCH = 64;
    private final Memory events = new Memory(8L * EVENT_BATCH);
    private final long eventsAddr = Memory.nativeValue(events);

    private RbdDriver(RbdConnection conn, RbdCompletionMode mode) {
        this.conn = conn;
        this.options = conn.options();
        this.size = conn.size();
        this.mode = mode;
        if (mode == RbdCompletionMode.EVENTFD) {
            notifier = new EventNotifier();
            try {
                notifyOn(conn);
            } catch (RuntimeException e) {
                notifier.close();
                throw e;
            }
        }
    }

    /** {@code rbd_set_image_notification}: completions of {@code c}'s image signal {@link #notifier}. */
    private void notifyOn(RbdConnection c) {
        int r = LibRbd.rbd_set_image_notification(c.image(), notifier.fd(), LibRbd.EVENT_TYPE_EVENTFD);
        if (r < 0) {
            throw RbdConnection.fail(r, "rbd_set_image_notification on " + options.toFilename());
        }
    }

    /**
     * Connects to the cluster and opens the image: QEMU's {@code qemu_rbd_open}.
     * Blocks (main loop). Add the driver to the graph with
     * {@code layer.addNode(name, driver, options.opensReadOnly())}.
     */
    public static RbdDriver open(RbdOptions o) {
        return open(o, RbdCompletionMode.configured());
    }

    /** As {@link #open(RbdOptions)} with the completion path chosen explicitly (benchmarks, tests). */
    public static RbdDriver open(RbdOptions o, RbdCompletionMode mode) {
        RbdConnection c = RbdConnection.open(o);
        try {
            return new RbdDriver(c, mode);
        } catch (RuntimeException e) {
            c.close();
            throw e;
        }
    }

    public RbdCompletionMode completionMode() {
        return mode;
    }

    public RbdOptions options() {
        return options;
    }

    @Override
    public String formatName() {
        return "rbd";
    }

    @Override
    public long length() {
        return size;
    }

    // ------------------------------------------------------------------ requests

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        RbdRequest r = take(RbdRequest.READ, offset, bytes, qiov, cb);
        int n = r.fillIovecs(qiov);
        if (create(r)) {
            finishSubmit(r, LibRbd.rbd_aio_readv(conn.image(), r.iovecs(), n, offset, r.completion()));
        }
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        RbdRequest r = take(RbdRequest.WRITE, offset, bytes, qiov, cb);
        int n = r.fillIovecs(qiov);
        if (create(r)) {
            finishSubmit(r, LibRbd.rbd_aio_writev(conn.image(), r.iovecs(), n, offset, r.completion()));
        }
    }

    @Override
    public void flush(BlockCompletion cb) {
        RbdRequest r = take(RbdRequest.FLUSH, 0, 0, null, cb);
        if (create(r)) {
            finishSubmit(r, LibRbd.rbd_aio_flush(conn.image(), r.completion()));
        }
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        RbdRequest r = take(RbdRequest.DISCARD, offset, bytes, null, cb);
        if (create(r)) {
            finishSubmit(r, LibRbd.rbd_aio_discard(conn.image(), offset, bytes, r.completion()));
        }
    }

    /** Without {@link BlockFlags#MAY_UNMAP} the zeroes are written thick, so the range stays allocated (QEMU too). */
    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        RbdRequest r = take(RbdRequest.WRITE_ZEROES, offset, bytes, null, cb);
        int zeroFlags = (flags & BlockFlags.MAY_UNMAP) != 0 ? 0 : LibRbd.RBD_WRITE_ZEROES_FLAG_THICK_PROVISION;
        if (create(r)) {
            finishSubmit(r, LibRbd.rbd_aio_write_zeroes(conn.image(), offset, bytes, r.completion(), zeroFlags, 0));
        }
    }

    private RbdRequest take(int type, long offset, long bytes, IoVec qiov, BlockCompletion cb) {
        if (mode == RbdCompletionMode.CALLBACK) {
            if (completionBh == null) { // first request in this context (home thread): the BH callbacks schedule
                completionBh = node().context().bhNew("rbd-completion " + node().name(), this::completionBh);
            }
        } else if (handler == null) { // first request in this context: watch librbd's eventfd here
            handler = node().context().setFdHandler(new AioHandler.Builder("rbd-completion " + node().name(),
                    notifier.fd()).onRead(this::pollEvents));
        }
        RbdRequest r = pool.pollFirst();
        if (r == null) {
            r = new RbdRequest(this);
            all.add(r);
        }
        r.type = type;
        r.offset = offset;
        r.bytes = bytes;
        r.qiov = qiov;
        r.cb = cb;
        if (LOG.isTraceEnabled()) {
            LOG.trace("qemu_rbd_start_co node={} type={} offset={} bytes={}", node().name(), type, offset, bytes);
        }
        return r;
    }

    /** {@code rbd_aio_create_completion} with the request's id as the callback argument. */
    private boolean create(RbdRequest r) {
        long fn = mode == RbdCompletionMode.CALLBACK ? RbdCompletions.CALLBACK_FN : 0; // eventfd: no callback
        int ret = LibRbd.rbd_aio_create_completion(r.id, fn, r.completionOut());
        if (ret < 0) {
            finish(r, ret);
            return false;
        }
        return true;
    }

    private void finishSubmit(RbdRequest r, int ret) {
        if (ret < 0) {
            // librbd refused the request at once: the completion will never fire
            LibRbd.rbd_aio_release(r.completion());
            finish(r, ret);
            return;
        }
        submitted++;
    }

    /** librbd's thread (through {@link RbdCompletions}): queue {@code r} and wake the home context. */
    void completed(RbdRequest r) {
        RbdRequest head;
        do {
            head = completedStack.get();
            r.next = head;
        } while (!completedStack.compareAndSet(head, r));
        completionBh.schedule();
    }

    /** The completion BH: QEMU's {@code qemu_rbd_completion_bh}, for every request finished since the last run. */
    private void completionBh() {
        RbdRequest list = completedStack.getAndSet(null);
        RbdRequest fifo = null;
        while (list != null) { // newest first: reverse, so requests complete in the order librbd finished them
            RbdRequest n = list.next;
            list.next = fifo;
            fifo = list;
            list = n;
        }
        while (fifo != null) {
            RbdRequest r = fifo;
            fifo = r.next;
            r.next = null;
            completedCount++;
            finish(r, r.ret);
        }
    }

    /**
     * EVENTFD mode, the eventfd handler in the home context: takes every
     * completion librbd queued on the image ({@code rbd_poll_io_events}),
     * reads its request id and result, releases it and ends the request.
     */
    private void pollEvents() {
        notifier.testAndClear();
        for (;;) {
            int n = LibRbd.rbd_poll_io_events(conn.image(), eventsAddr, EVENT_BATCH);
            if (n < 0) {
                LOG.error("rbd_poll_io_events {}: {}", options.toFilename(), RbdConnection.errnoName(-n));
                return;
            }
            for (int i = 0; i < n; i++) {
                long c = PlatformDependent.getLong(eventsAddr + 8L * i);
                long id = LibRbd.rbd_aio_get_arg(c);
                long ret = LibRbd.rbd_aio_get_return_value(c);
                LibRbd.rbd_aio_release(c);
                RbdRequest r = RbdCompletions.lookup(id);
                if (r == null || r.driver != this) {
                    LOG.error("librbd completed unknown request id {} (ret {}): dropped", id, ret);
                    continue;
                }
                completedCount++;
                finish(r, ret);
            }
            if (n < EVENT_BATCH) {
                return;
            }
        }
    }

    /**
     * Ends a request in the home context: a short read is padded with zeroes
     * (QEMU's {@code qemu_rbd_finish_bh}), a byte count becomes 0, an error
     * stays -errno; the request returns to the pool before the caller's
     * completion runs (which may submit again).
     */
    private void finish(RbdRequest r, long ret) {
        BlockCompletion cb = r.cb;
        IoVec q = r.qiov;
        int type = r.type;
        long bytes = r.bytes;
        r.cb = null;
        r.qiov = null;
        pool.addFirst(r);
        int result;
        if (ret < 0) {
            result = (int) Math.max(ret, Integer.MIN_VALUE);
            LOG.debug("rbd request type={} offset={} bytes={} failed: {}", type, r.offset, bytes,
                    RbdConnection.errnoName((int) -ret));
        } else {
            if (type == RbdRequest.READ && ret < bytes) {
                q.fill(ret, bytes - ret, (byte) 0);
            }
            result = 0;
        }
        if (LOG.isTraceEnabled()) {
            LOG.trace("qemu_rbd_aio_complete type={} ret={}", type, ret);
        }
        cb.complete(result);
    }

    // ------------------------------------------------------------------ size, status, control

    /**
     * Resizes the image (QEMU's {@code qemu_rbd_co_truncate} for
     * {@code block_resize}): blocking, main loop, node drained by the caller.
     * 0 or -errno.
     */
    @Override
    public int truncate(long newSize) {
        int r = LibRbd.rbd_resize(conn.image(), newSize);
        if (r < 0) {
            LOG.warn("rbd_resize {} to {}: {}", options.toFilename(), newSize, RbdConnection.errnoName(-r));
            return r;
        }
        size = conn.size();
        return 0;
    }

    /** Re-reads the image size (another client may have resized it); returns it. */
    public long refreshLength() {
        size = conn.size();
        return size;
    }

    /**
     * Holes and data from {@code rbd_diff_iterate2} (whole objects, parent
     * included), as QEMU's {@code qemu_rbd_co_block_status}: only when the
     * image has a valid fast-diff map, which makes the call cheap (it reads
     * the object map, not the objects); otherwise "data". Blocking, as in QEMU.
     */
    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        if (bytes == 0 || !fastDiffUsable()) {
            return BlockStatus.data(bytes);
        }
        diff.start(offset, offset + bytes);
        int r = LibRbd.rbd_diff_iterate2(conn.image(), null, offset, bytes, (byte) 1, (byte) 1, diff, 0);
        if (r < 0 && r != EXIT_DIFF_ITERATE2) {
            LOG.debug("rbd_diff_iterate2 {}: {}", options.toFilename(), RbdConnection.errnoName(-r));
            return BlockStatus.data(bytes);
        }
        return diff.result();
    }

    private boolean fastDiffUsable() {
        try (Scratch s = new Scratch()) {
            if (LibRbd.rbd_get_features(conn.image(), s.peer()) < 0
                    || (s.get() & LibRbd.RBD_FEATURE_FAST_DIFF) == 0) {
                return false;
            }
            if (LibRbd.rbd_get_flags(conn.image(), s.peer()) < 0) {
                return false;
            }
            return (s.get() & (LibRbd.RBD_FLAG_OBJECT_MAP_INVALID | LibRbd.RBD_FLAG_FAST_DIFF_INVALID)) == 0;
        }
    }

    @Override
    public boolean needsReopen(boolean readOnly) {
        return !readOnly && conn.options().opensReadOnly();
    }

    /** Read-only to read-write: a snapshot cannot be written; a read-only open is reopened read-write. */
    @Override
    public int reopen(boolean readOnly) {
        if (readOnly || !conn.options().opensReadOnly()) {
            return 0;
        }
        if (options.snapshot() != null) {
            return -Errno.EROFS;
        }
        RbdConnection rw;
        try {
            rw = RbdConnection.open(options.withReadOnly(false));
        } catch (BlockException e) {
            LOG.warn("reopening {} read-write: {}", options.toFilename(), e.getMessage());
            return -Errno.EIO;
        }
        if (notifier != null) {
            try {
                notifyOn(rw);
            } catch (BlockException e) {
                rw.close();
                LOG.warn("reopening {} read-write: {}", options.toFilename(), e.getMessage());
                return -Errno.EIO;
            }
        }
        RbdConnection old = conn;
        conn = rw;
        old.close();
        return 0;
    }

    /** Another process may have written the image (migration): drop librbd's cache, re-read the size. */
    @Override
    public int activate() {
        int r = LibRbd.rbd_invalidate_cache(conn.image());
        if (r < 0) {
            return r;
        }
        size = conn.size();
        return 0;
    }

    @Override
    public void detachAioContext(AioContext ctx) {
        // drained: nothing in flight, so no librbd thread can schedule this BH any more; pending BHs of the old
        // context ran before the detach (BlockLayer.setAioContext quiesces it)
        BottomHalf bh = completionBh;
        completionBh = null;
        if (bh != null) {
            bh.delete();
        }
        if (handler != null) {
            handler.remove();
            handler = null;
        }
    }

    @Override
    public void attachAioContext(AioContext ctx) {
        // the next request makes the BH in ctx (take())
    }

    /** No request is in flight (the node waited for them): free the pool's ids, then close librbd, bounded. */
    @Override
    public void close() {
        BottomHalf bh = completionBh;
        completionBh = null;
        if (bh != null) {
            bh.delete();
        }
        if (handler != null) {
            handler.remove();
            handler = null;
        }
        if (pool.size() != all.size()) {
            LOG.error("closing {} with {} librbd request(s) still in flight: their buffers are kept",
                    options.toFilename(), all.size() - pool.size());
        } else {
            for (RbdRequest r : all) {
                RbdCompletions.unregister(r.id);
            }
            all.clear();
            pool.clear();
        }
        conn.close();
        if (notifier != null) {
            notifier.close(); // after rbd_close: librbd no longer writes it
        }
    }

    @Override
    public String describe() {
        return "rbd " + options.toFilename() + " completions=" + mode.name().toLowerCase(java.util.Locale.ROOT)
                + " size=" + size + " submitted=" + submitted + " completed="
                + completedCount + " requests=" + all.size() + " idle=" + pool.size();
    }

    /** Eight bytes of native memory for an out-parameter (control path). */
    private static final class Scratch implements AutoCloseable {
        private final Memory m = new Memory(8);

        long peer() {
            return Memory.nativeValue(m);
        }

        long get() {
            return m.getLong(0);
        }

        @Override
        public void close() {
            m.close();
        }
    }

    /**
     * The first run (all data or all hole) of a diff from {@code start}: QEMU's
     * {@code qemu_rbd_diff_iterate_cb}. librbd reports allocated extents in
     * order; a gap before the first one is a hole that ends there, and data
     * ends at the first gap after it. Kept reachable by the driver while
     * librbd calls it (synchronously, on this thread).
     */
    private static final class DiffState implements LibRbd.DiffCallback {
        private long start;
        private long end;
        private long cursor;
        private int kind; // 0 unknown, 1 data, 2 hole

        void start(long s, long e) {
            start = s;
            end = e;
            cursor = s;
            kind = 0;
        }

        @Override
        public int invoke(long offset, long length, int exists, long arg) {
            if (exists == 0) {
                return 0; // a diff from the beginning reports no deletions; ignore any
            }
            long off = Math.max(offset, start);
            long stop = Math.min(offset + length, end);
            if (off > cursor) { // a gap before this extent
                if (kind == 0) {
                    kind = 2;
                    cursor = off;
                }
                return EXIT_DIFF_ITERATE2;
            }
            if (kind == 0) {
                kind = 1;
            }
            cursor = Math.max(cursor, stop);
            return 0;
        }

        BlockStatus result() {
            switch (kind) {
                case 1:
                    return BlockStatus.data(cursor - start);
                case 2:
                    return BlockStatus.zero(cursor - start);
                default:
                    return BlockStatus.zero(end - start); // no extent at all: one hole
            }
        }
    }
}
