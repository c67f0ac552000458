package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.Errno;
import io.vblk.aio.LegacyBehavior;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a device holds to do I/O: QEMU's {@code BlockBackend}. It is the
 * root parent of a node, counts the requests its device issued, checks
 * them (range, read-only), applies the error policy, and guarantees that a
 * completion never runs before the call that issued the request returned
 * (a synchronous completion is deferred to a BH, as QEMU's
 * {@code blk_aio_complete_bh}).
 *
 * <p>Requests issued while the backend is drained wait for drained-end and
 * are then submitted (QEMU's {@code blk_wait_while_drained}); while parked
 * they do not count as in flight, or the drain that parked them would wait for
 * them forever (7f16476fab; {@link LegacyBehavior#BLK_IN_FLIGHT_WHILE_QUEUED}
 * keeps the pre-fix count). Failed requests
 * under the {@link ErrorPolicy#STOP} policy are kept, the I/O status is
 * recorded, the machine is asked to stop, and {@link #resume()} resubmits
 * them: nothing is lost.
 *
 * <p>Everything runs in the home context of the root node (see
 * {@link BlockNode#checkOwned}). Request objects are pooled.
 */
public final class BlockBackend implements BlockParent {
    private static final Logger LOG = LoggerFactory.getLogger(BlockBackend.class);

    private final BlockLayer layer;
    private final String name;
    private volatile BlockChild root;
    private volatile BlockDevOps devOps = BlockDevOps.NONE;
    private volatile int inFlight;
    /** Requests waiting in {@link #queued} for drained end (QEMU's {@code blk->queued_requests}). */
    private volatile int parked;
    private volatile int quiesceCounter;
    private volatile ErrorPolicy readPolicy = ErrorPolicy.REPORT;
    private volatile ErrorPolicy writePolicy = ErrorPolicy.REPORT;
    private volatile IoStatus ioStatus = IoStatus.OK;
    private volatile Runnable stopRequest;
    private volatile String pinReason;
    private volatile boolean readOnly;
    private final ArrayDeque<BlkRequest> pool = new ArrayDeque<>();
    private final ArrayDeque<BlkRequest> queued = new ArrayDeque<>();
    private final ArrayDeque<BlkRequest> deferred = new ArrayDeque<>();
    private final List<BlkRequest> stopped = new ArrayList<>();
    private BottomHalf deferBh;
    private AioContext deferCtx;
    private volatile long completionsWithoutMedium;

    BlockBackend(BlockLayer layer, String name) {
        this.layer = layer;
        this.name = name;
    }

    public String name() {
        return name;
    }

    @Override
    public String parentName() {
        return "backend '" + name + "'";
    }

    /** Inserts the medium: the backend becomes the root parent of {@code node}. */
    public void attach(BlockNode node) {
        if (root != null) {
            throw new BlockException("backend '" + name + "' already has node '" + root.node().name() + "'");
        }
        bindDeferBh(node.context());
        root = node.attachParent(this, "root", ChildRole.FILTERED);
    }

    /**
     * Ejects the medium: QEMU's {@code blk_remove_bs}. The backend is drained
     * first (4295c5fc61, "block: fix QEMU crash with scsi-hd and drive_del"):
     * dropping the root edge may close the node, whose close polls, and a
     * completion of this backend run by that poll would find no medium (QEMU:
     * a stale {@code blk->root}). {@link LegacyBehavior#NO_DRAIN_IN_BLK_REMOVE_BS}
     * skips exactly that drain; such completions are counted
     * ({@link #completionsWithoutMedium()}).
     */
    public void detach() {
        BlockChild r = root;
        if (r == null) {
            return;
        }
        if (inFlight > 0 || !queued.isEmpty()) {
            r.node().checkOwned("eject");
            if (!layer.loop().legacy().isOn(LegacyBehavior.NO_DRAIN_IN_BLK_REMOVE_BS)) {
                AioWait.pollWhile(r.node().context(), () -> inFlightCount() > 0);
            }
            if (!queued.isEmpty()) {
                throw new BlockException("backend '" + name + "' is drained with " + queued.size()
                        + " requests waiting; end the drained section before ejecting");
            }
        }
        root = null;
        r.node().detachParent(r); // a drained node's quiesce of this backend ends with the edge
    }

    public BlockNode root() {
        BlockChild r = root;
        return r == null ? null : r.node();
    }

    public BlockChild rootEdge() {
        return root;
    }

    /**
     * Points the backend at another node (a mirror or commit pivot, a
     * snapshot): the root edge's reference moves to {@code node}, and the
     * backend stays quiesced exactly if {@code node} is drained. The caller
     * drains both nodes, so no request is in flight.
     */
    public void replaceRoot(BlockNode node) {
        BlockChild r = root;
        if (r == null) {
            attach(node);
            return;
        }
        BlockNode old = r.node();
        if (old == node) {
            return;
        }
        if (node.context() != old.context()) {
            throw new BlockException("backend '" + name + "': cannot switch from '" + old.name() + "' (in "
                    + old.context().name() + ") to '" + node.name() + "' (in " + node.context().name() + ")");
        }
        BlockNode.repoint(r, node);
    }

    public AioContext context() {
        BlockChild r = root;
        return r == null ? layer.loop().context() : r.node().context();
    }

    public void setDevOps(BlockDevOps ops) {
        devOps = ops == null ? BlockDevOps.NONE : ops;
    }

    /** Forbids context moves while set (QEMU's {@code blk_set_allow_aio_context_change(false)}); null lifts it. */
    public void pin(String reason) {
        pinReason = reason;
    }

    public void setReadOnly(boolean ro) {
        readOnly = ro;
    }

    public boolean isReadOnly() {
        BlockNode n = root();
        return readOnly || n == null || n.isReadOnly();
    }

    public long length() {
        BlockNode n = root();
        return n == null ? 0 : n.length();
    }

    public int inFlight() {
        return inFlightCount();
    }

    /**
     * QEMU's {@code blk->in_flight}: requests submitted and not yet finished.
     * A request parked while the backend is drained does not count: the
     * drain's poll waits for this to reach 0, and a parked request resumes
     * only at drained end, after the drain (QEMU's
     * {@code blk_wait_while_drained} dropping its reference, 7f16476fab).
     * With {@link LegacyBehavior#BLK_IN_FLIGHT_WHILE_QUEUED} the parked ones
     * count too: before the fix they kept the reference they took at issue
     * ({@code blk_aio_prwv}) while they waited (bug 009).
     */
    private int inFlightCount() {
        int n = inFlight;
        return parked > 0 && layer.loop().legacy().isOn(LegacyBehavior.BLK_IN_FLIGHT_WHILE_QUEUED) ? n + parked : n;
    }

    public boolean isQuiesced() {
        return quiesceCounter > 0;
    }

    public void setErrorPolicy(ErrorPolicy read, ErrorPolicy write) {
        readPolicy = read;
        writePolicy = write;
    }

    /** What the backend calls (from the main loop) to stop the machine after a stopping error. */
    public void setStopRequest(Runnable r) {
        stopRequest = r;
    }

    public IoStatus ioStatus() {
        return ioStatus;
    }

    public int stoppedRequests() {
        synchronized (stopped) {
            return stopped.size();
        }
    }

    // ------------------------------------------------------------------ requests

    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        issue(BlockNode.OP_READ, offset, bytes, qiov, flags, cb);
    }

    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        issue(BlockNode.OP_WRITE, offset, bytes, qiov, flags, cb);
    }

    public void flush(BlockCompletion cb) {
        issue(BlockNode.OP_FLUSH, 0, 0, null, 0, cb);
    }

    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        issue(BlockNode.OP_DISCARD, offset, bytes, null, 0, cb);
    }

    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        issue(BlockNode.OP_WRITE_ZEROES, offset, bytes, null, flags, cb);
    }

    private void issue(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        BlkRequest r = pool.pollFirst();
        if (r == null) {
            r = new BlkRequest();
        }
        r.op = op;
        r.offset = offset;
        r.bytes = bytes;
        r.qiov = qiov;
        r.flags = flags;
        r.cb = cb;
        int err = check(op, offset, bytes);
        if (err != 0) {
            if (LOG.isDebugEnabled()) {
                LOG.debug("backend '{}': rejected {} offset={} bytes={}: {}", name, BlockNode.opName(op), offset, bytes,
                        Errno.name(-err));
            }
            inFlight++;
            r.ret = err;
            deferCompletion(r);
            return;
        }
        submit(r);
    }

    private int check(int op, long offset, long bytes) {
        BlockNode n = root();
        if (n == null) {
            return -Errno.ENOMEDIUM;
        }
        n.checkOwned(BlockNode.opName(op)); // a constant: no allocation on the request path
        if (offset < 0 || bytes < 0) {
            return -Errno.EINVAL;
        }
        if (op != BlockNode.OP_FLUSH) {
            long len = n.length();
            if (offset > len || len - offset < bytes) {
                return -Errno.EIO;
            }
        }
        if (op != BlockNode.OP_READ && op != BlockNode.OP_FLUSH && isReadOnly()) {
            return -Errno.EROFS;
        }
        return 0;
    }

    private void submit(BlkRequest r) {
        if (quiesceCounter > 0) {
            queued.addLast(r); // waits for drained end; not in flight meanwhile (see inFlightCount)
            parked++;
            return;
        }
        BlockNode n = root();
        inFlight++;
        r.submitting = true;
        switch (r.op) {
            case BlockNode.OP_READ:
                n.preadv(r.offset, r.bytes, r.qiov, r.flags, r);
                break;
            case BlockNode.OP_WRITE:
                n.pwritev(r.offset, r.bytes, r.qiov, r.flags, r);
                break;
            case BlockNode.OP_FLUSH:
                n.flush(r);
                break;
            case BlockNode.OP_DISCARD:
                n.pdiscard(r.offset, r.bytes, r);
                break;
            default:
                n.pwriteZeroes(r.offset, r.bytes, r.flags, r);
                break;
        }
        r.submitting = false;
        if (r.completedEarly) {
            r.completedEarly = false;
            deferCompletion(r);
        }
    }

    private void deferCompletion(BlkRequest r) {
        deferred.addLast(r);
        AioContext c = context();
        if (deferCtx != c) {
            bindDeferBh(c);
        }
        deferBh.schedule();
    }

    private void bindDeferBh(AioContext c) {
        if (deferBh != null) {
            deferBh.delete();
        }
        deferCtx = c;
        deferBh = c.bhNew("blk-complete:" + name, this::runDeferred);
    }

    private void runDeferred() {
        BlkRequest r;
        while ((r = deferred.pollFirst()) != null) {
            finish(r, r.ret);
        }
    }

    private void finish(BlkRequest r, int ret) {
        if (ret < 0) {
            ErrorPolicy p = r.op == BlockNode.OP_READ ? readPolicy : writePolicy;
            if (p.stops(ret)) {
                stopOnError(r, ret);
                return;
            }
            if (p == ErrorPolicy.IGNORE) {
                ret = 0;
            }
        }
        release(r, ret);
    }

    /**
     * Requests of this backend that completed after its medium was ejected:
     * each ran its device's callback against a backend with no node (QEMU
     * before 4295c5fc61: a use-after-free of {@code blk->root}). Counted
     * whatever the legacy switch says; written in the completing context.
     */
    public long completionsWithoutMedium() {
        return completionsWithoutMedium;
    }

    /** The request goes back to the pool and its caller learns {@code ret}; it stops counting as in flight. */
    private void release(BlkRequest r, int ret) {
        if (root == null && completionsWithoutMedium++ == 0) {
            LOG.warn("backend '{}': a {} completed after the medium was ejected", name, BlockNode.opName(r.op));
        }
        BlockCompletion cb = r.cb;
        r.cb = null;
        r.qiov = null;
        pool.addFirst(r);
        try {
            cb.complete(ret);
        } finally {
            decInFlight();
        }
    }

    private void decInFlight() {
        inFlight--;
        context().aioWait().kick();
    }

    private void stopOnError(BlkRequest r, int ret) {
        ioStatus = ret == -Errno.ENOSPC ? IoStatus.NOSPACE : IoStatus.FAILED;
        LOG.warn("backend '{}': {} at offset {} failed with {}; keeping it and stopping the machine", name,
                BlockNode.opName(r.op), r.offset, Errno.name(-ret));
        synchronized (stopped) {
            stopped.add(r);
        }
        decInFlight();
        Runnable stop = stopRequest;
        if (stop != null) {
            layer.loop().context().bhScheduleOneshot("vm-stop-request:" + name, stop);
        }
    }

    /**
     * Resubmits the requests kept by a stopping error, in the backend's home
     * context, and clears the I/O status: QEMU's {@code cont} path.
     */
    public void resume() {
        List<BlkRequest> again;
        synchronized (stopped) {
            again = new ArrayList<>(stopped);
            stopped.clear();
        }
        ioStatus = IoStatus.OK;
        if (!again.isEmpty()) {
            context().bhScheduleOneshot("blk-resume:" + name, () -> again.forEach(this::submit));
        }
    }

    /**
     * Gives up the requests kept by a stopping error, completing each with
     * -ECANCELED: a device reset drops them (QEMU's virtio_blk_reset dropping
     * {@code s->rq}). Caller owns the backend's context.
     */
    public void discardStopped() {
        List<BlkRequest> drop;
        synchronized (stopped) {
            drop = new ArrayList<>(stopped);
            stopped.clear();
        }
        ioStatus = IoStatus.OK;
        for (BlkRequest r : drop) {
            inFlight++; // a kept request stopped counting when it failed; release ends it once more
            release(r, -Errno.ECANCELED);
        }
    }

    /** Waits until none of this backend's requests is in flight (QEMU's {@code blk_drain}). */
    public void drain() {
        BlockNode n = root();
        if (n != null) {
            n.drain();
        }
    }

    public DrainedSection drainedBegin() {
        BlockNode n = root();
        if (n == null) {
            throw new BlockException("backend '" + name + "' has no medium");
        }
        return n.drainedBegin();
    }

    /** Moves the backend's node graph to {@code ctx} (QEMU's {@code blk_set_aio_context}). */
    public void setAioContext(AioContext ctx) {
        BlockNode n = root();
        if (n == null) {
            throw new BlockException("backend '" + name + "' has no medium");
        }
        layer.setAioContext(n, ctx);
    }

    // ------------------------------------------------------------------ BlockParent

    @Override
    public void childDrainedBegin(BlockChild child) {
        if (quiesceCounter++ == 0) {
            devOps.drainedBegin();
        }
    }

    @Override
    public void childDrainedEnd(BlockChild child) {
        if (--quiesceCounter == 0) {
            devOps.drainedEnd();
            BlkRequest r;
            while (quiesceCounter == 0 && (r = queued.pollFirst()) != null) {
                parked--;
                submit(r);
            }
        }
    }

    @Override
    public boolean childDrainedPoll(BlockChild child) {
        return inFlightCount() > 0 || devOps.drainedPoll();
    }

    @Override
    public String cannotSetAioContext(BlockChild child, AioContext ctx) {
        String why = pinReason;
        return why == null ? null : "backend '" + name + "' is pinned: " + why;
    }

    @Override
    public void childAioContextChanged(BlockChild child, AioContext ctx) {
        bindDeferBh(ctx);
    }

    public String describe() {
        BlockNode n = root();
        return "backend '" + name + "' -> " + (n == null ? "(no medium)" : "'" + n.name() + "'") + " in_flight=" + inFlightCount()
                + " quiesce=" + quiesceCounter + " queued=" + queued.size() + " iostatus=" + ioStatus
                + " stopped_requests=" + stoppedRequests();
    }

    /** A backend request: pooled; also its own completion callback. */
    private final class BlkRequest implements BlockCompletion {
        int op;
        long offset;
        long bytes;
        IoVec qiov;
        int flags;
        BlockCompletion cb;
        int ret;
        boolean submitting;
        boolean completedEarly;

        @Override
        public void complete(int r) {
            if (submitting) {
                ret = r;
                completedEarly = true;
                return;
            }
            finish(this, r);
        }
    }
}
