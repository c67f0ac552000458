package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.Errno;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A node of the block graph: QEMU's {@code BlockDriverState}. It has a
 * unique name, a driver, children with roles, parents, a reference count, a
 * home {@link AioContext}, a count of requests in flight and a quiesce
 * counter for drained sections.
 *
 * <p><b>Home-context rule.</b> Everything here runs in the node's home
 * context: on its home thread, or on the main loop while it holds that
 * context's lock (acquired once at the command's entry point, never
 * recursively). {@link #checkOwned} enforces it with a clear error.
 *
 * <p><b>Where the code lives.</b> This class is the node and its graph
 * edges (QEMU's block.c: children, parents, {@code bdrv_attach_child},
 * {@code bdrv_replace_child}, references); the request entry points and
 * their in-flight accounting are {@link NodeRequests} (block/io.c), the
 * drained sections {@link NodeDrain} (block/io.c's
 * {@code bdrv_drained_begin}/{@code end}). The public methods here delegate.
 */
public final class BlockNode implements BlockParent {
    private static final Logger LOG = LoggerFactory.getLogger(BlockNode.class);

    static final int OP_READ = 0;
    static final int OP_WRITE = 1;
    static final int OP_FLUSH = 2;
    static final int OP_DISCARD = 3;
    static final int OP_WRITE_ZEROES = 4;

    private final BlockLayer layer;
    private final String name;
    private final BlockDriver driver;
    private volatile AioContext ctx;
    private final List<BlockChild> children = new CopyOnWriteArrayList<>();
    private final List<BlockChild> parents = new CopyOnWriteArrayList<>();
    private volatile boolean readOnly;
    private volatile boolean inactive;
    private volatile boolean closed;
    private int refcnt = 1;
    private volatile int inFlight;
    private final NodeRequests requests;
    private final NodeDrain drain;

    BlockNode(BlockLayer layer, String name, BlockDriver driver, AioContext ctx, boolean readOnly) {
        this.layer = layer;
        this.name = name;
        this.driver = driver;
        this.ctx = ctx;
        this.readOnly = readOnly;
        this.requests = new NodeRequests(this, driver);
        this.drain = new NodeDrain(this, driver);
        driver.bind(this);
    }

    public String name() {
        return name;
    }

    public BlockLayer layer() {
        return layer;
    }

    public BlockDriver driver() {
        return driver;
    }

    public AioContext context() {
        return ctx;
    }

    public boolean isReadOnly() {
        return readOnly;
    }

    public void setReadOnly(boolean ro) {
        readOnly = ro;
    }

    public boolean isInactive() {
        return inactive;
    }

    public boolean isClosed() {
        return closed;
    }

    public long length() {
        return driver.length();
    }

    public int inFlight() {
        return inFlight;
    }

    public int quiesceCounter() {
        return drain.quiesceCounter();
    }

    public boolean isQuiesced() {
        return drain.quiesceCounter() > 0;
    }

    @Override
    public String parentName() {
        return "node '" + name + "'";
    }

    // ------------------------------------------------------------------ graph

    public List<BlockChild> children() {
        return List.copyOf(children);
    }

    public List<BlockChild> parents() {
        return List.copyOf(parents);
    }

    /** The live parent list, for iteration by the drain (copy-on-write: safe against changes while iterating). */
    List<BlockChild> parentEdges() {
        return parents;
    }

    /** The child in {@code role}, or null. */
    public BlockNode child(ChildRole role) {
        for (BlockChild c : children) {
            if (c.role() == role) {
                return c.node();
            }
        }
        return null;
    }

    public BlockChild childEdge(ChildRole role) {
        for (BlockChild c : children) {
            if (c.role() == role) {
                return c;
            }
        }
        return null;
    }

    /** QEMU's {@code bdrv_attach_child}: this node becomes a parent of {@code child} (taking a reference). */
    public BlockChild attachChild(BlockNode child, String edgeName, ChildRole role) {
        if (child.ctx != ctx) {
            throw new BlockException("cannot attach '" + child.name + "' (in " + child.ctx.name() + ") under '" + name
                    + "' (in " + ctx.name() + "): a node and its children share one AioContext");
        }
        BlockChild edge = new BlockChild(this, edgeName, role, child);
        child.addParent(edge);
        children.add(edge);
        child.beginParentQuiesce(edge); // a new parent of a drained child is quiesced too
        return edge;
    }

    /** QEMU's {@code bdrv_unref_child}. */
    public void detachChild(BlockChild edge) {
        if (!children.remove(edge)) {
            throw new BlockException("'" + edge.name() + "' is not a child edge of '" + name + "'");
        }
        BlockNode child = edge.node();
        child.removeParent(edge);
        endParentQuiesce(edge);
        child.unref();
    }

    /**
     * Points {@code edge} at {@code newChild} (used by snapshots and job
     * pivots): the edge's reference moves from the old child to the new one,
     * and this parent's quiesce follows the new child's drained state, as
     * QEMU's {@code bdrv_replace_child_noperm}.
     */
    public void replaceChild(BlockChild edge, BlockNode newChild) {
        if (!children.contains(edge)) {
            throw new BlockException("'" + edge.name() + "' is not a child edge of '" + name + "'");
        }
        repoint(edge, newChild);
    }

    /**
     * Moves {@code edge} (a node's child edge or a backend's root) to
     * {@code nu}: the reference and the parent's drained state follow. One
     * mechanism for snapshots, pivots and medium changes.
     */
    static void repoint(BlockChild edge, BlockNode nu) {
        BlockNode old = edge.node();
        if (old == nu) {
            return;
        }
        nu.addParent(edge); // takes the edge's reference
        edge.setNode(nu);
        old.removeParent(edge);
        nu.transferParentQuiesce(edge);
        old.unref();
    }

    // ------------------------------------------------------------------ parents that are not nodes (jobs, exports)

    /**
     * Makes {@code parent} (a block job, an export) a parent of this node
     * through a new edge that holds a reference: QEMU's
     * {@code bdrv_root_attach_child}. If the node is drained, the new parent
     * is told so at once. Home context (or its lock) only.
     */
    public BlockChild attachParent(BlockParent parent, String edgeName, ChildRole role) {
        BlockChild edge = new BlockChild(parent, edgeName, role, this);
        addParent(edge);
        beginParentQuiesce(edge);
        return edge;
    }

    /** Removes an edge made by {@link #attachParent}, ending the parent's quiesce and dropping the reference. */
    public void detachParent(BlockChild edge) {
        if (edge.node() != this || !parents.contains(edge)) {
            throw new BlockException(edge + " is not a parent edge of '" + name + "'");
        }
        removeParent(edge);
        endParentQuiesce(edge);
        unref();
    }

    /** A parent that joins a drained node is quiesced for it (once, as every parent is). */
    void beginParentQuiesce(BlockChild edge) {
        drain.beginParentQuiesce(edge);
    }

    /** A parent that leaves a node it was quiesced for resumes. */
    static void endParentQuiesce(BlockChild edge) {
        NodeDrain.endParentQuiesce(edge);
    }

    /** After {@code edge} moved to this node: the parent is quiesced exactly if this node is drained. */
    void transferParentQuiesce(BlockChild edge) {
        drain.transferParentQuiesce(edge);
    }

    void addParent(BlockChild edge) {
        parents.add(edge);
        ref();
    }

    void removeParent(BlockChild edge) {
        parents.remove(edge);
    }

    public synchronized void ref() {
        if (closed) {
            throw new BlockException("node '" + name + "' is closed");
        }
        refcnt++;
    }

    /** Drops a reference; the last one closes the node and unreferences its children. */
    public void unref() {
        boolean last;
        synchronized (this) {
            last = --refcnt == 0;
        }
        if (last) {
            close();
        }
    }

    /** Waits for whatever is still in flight (a drain hook, a request), then frees the driver: QEMU's bdrv_close. */
    private void close() {
        if (inFlight > 0) {
            checkOwned("close");
            AioWait.pollWhile(ctx, () -> inFlight > 0);
        }
        closed = true;
        driver.close();
        for (BlockChild c : children) {
            children.remove(c);
            c.node().removeParent(c);
            endParentQuiesce(c); // a node closed inside a child's drained section gives its quiesce back
            c.node().unref();
        }
        layer.forget(this);
    }

    // ------------------------------------------------------------------ requests

    /** Rule 2: the caller runs in the home thread or holds the home context's lock. */
    public void checkOwned(String what) {
        AioContext c = ctx;
        if (!c.inHomeThread() && !c.lock().isHeldByCurrentThread()) {
            throw new IllegalStateException(what + " on node '" + name + "' from thread '" + Thread.currentThread().getName()
                    + "': run it in AioContext '" + c.name() + "' or hold that context's lock");
        }
    }

    /**
     * QEMU's {@code bdrv_debug_event}: tells this node's driver (and only it)
     * that its parent reached {@code event}; a format raises "read_aio" and
     * "write_aio" on its file child before a data request. Home context.
     */
    public void debugEvent(String event) {
        BlockDriver d = driver();
        if (d != null) {
            d.debugEvent(event);
        }
    }

    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        requests.preadv(offset, bytes, qiov, flags, cb);
    }

    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        requests.pwritev(offset, bytes, qiov, flags, cb);
    }

    public void flush(BlockCompletion cb) {
        requests.flush(cb);
    }

    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        requests.pdiscard(offset, bytes, cb);
    }

    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        requests.pwriteZeroes(offset, bytes, flags, cb);
    }

    public BlockStatus blockStatus(long offset, long bytes) {
        return driver.blockStatus(offset, bytes);
    }

    static String opName(int op) {
        switch (op) {
            case OP_READ: return "read";
            case OP_WRITE: return "write";
            case OP_FLUSH: return "flush";
            case OP_DISCARD: return "discard";
            default: return "write-zeroes";
        }
    }

    /** Counts work (a driver's internal request, a drain hook) the drain must wait for. */
    public void incInFlight() {
        inFlight++;
    }

    /** The matching decrement; wakes a main loop waiting on this node (QEMU's {@code bdrv_dec_in_flight}). */
    public void decInFlight() {
        inFlight--;
        ctx.aioWait().kick();
    }

    // ------------------------------------------------------------------ synchronous wrappers (control path)

    /**
     * Runs a request and waits for it with {@link AioWait#pollWhile}: QEMU's
     * synchronous {@code bdrv_pread}/{@code bdrv_flush}. Main loop (holding the
     * home context's lock once) or home thread only; never from a request path.
     */
    public int flushSync() {
        NodeRequests.SyncCompletion done = new NodeRequests.SyncCompletion();
        flush(done);
        return done.await(this);
    }

    public int preadSync(long offset, long bytes, IoVec qiov) {
        NodeRequests.SyncCompletion done = new NodeRequests.SyncCompletion();
        preadv(offset, bytes, qiov, 0, done);
        return done.await(this);
    }

    public int pwriteSync(long offset, long bytes, IoVec qiov, int flags) {
        NodeRequests.SyncCompletion done = new NodeRequests.SyncCompletion();
        pwritev(offset, bytes, qiov, flags, done);
        return done.await(this);
    }

    public int pwriteZeroesSync(long offset, long bytes, int flags) {
        NodeRequests.SyncCompletion done = new NodeRequests.SyncCompletion();
        pwriteZeroes(offset, bytes, flags, done);
        return done.await(this);
    }

    public int pdiscardSync(long offset, long bytes) {
        NodeRequests.SyncCompletion done = new NodeRequests.SyncCompletion();
        pdiscard(offset, bytes, done);
        return done.await(this);
    }

    /**
     * Sets the node's length: QEMU's {@code bdrv_co_truncate} as
     * {@code qmp_block_resize} calls it, inside a drained section of the node
     * so no request runs against the old length while it changes. The caller
     * runs in the home context or holds its lock; the node's length (and so
     * every {@link BlockBackend}'s on it) is the driver's new one afterwards.
     * Devices on it are told by whoever owns them (an export's config change).
     *
     * @throws BlockException with QEMU's message if the size is negative, the
     *         node read-only, the driver unable to resize, or the driver failed
     */
    public void truncate(long newLength) {
        checkOwned("truncate");
        if (newLength < 0) {
            throw new BlockException("Image size cannot be negative");
        }
        if (isReadOnly()) {
            throw new BlockException("Image is read-only");
        }
        int r;
        try (DrainedSection s = drainedBegin()) {
            r = driver.truncate(newLength);
        }
        if (r < 0) {
            throw new BlockException("Failed to resize node '" + name + "' (" + driver.formatName() + ") to "
                    + newLength + " bytes: " + Errno.name(-r));
        }
        if (LOG.isTraceEnabled()) {
            LOG.trace("bdrv_co_truncate node={} offset={}", name, newLength);
        }
    }

    // ------------------------------------------------------------------ drained sections

    /**
     * Begins a drained section: QEMU's {@code bdrv_drained_begin}. Returns an
     * {@link DrainedSection} to close (try-with-resources) so every path ends it.
     */
    public DrainedSection drainedBegin() {
        return drain.begin();
    }

    /** A complete drained section: waits until nothing is in flight (QEMU's {@code bdrv_drain}). */
    public void drain() {
        try (DrainedSection s = drainedBegin()) {
            // nothing: begin waited, end resumes
        }
    }

    /** QEMU's {@code bdrv_drained_end}; prefer closing the {@link DrainedSection}. */
    void drainedEnd() {
        drain.end();
    }

    /** Whether the node or a parent still has activity (QEMU's {@code bdrv_drain_poll}). */
    boolean drainPoll() {
        return drain.poll();
    }

    // BlockParent: this node as the parent of its children.

    @Override
    public void childDrainedBegin(BlockChild child) {
        drain.quiesce(null);
    }

    @Override
    public void childDrainedEnd(BlockChild child) {
        drain.unquiesce(null);
    }

    @Override
    public boolean childDrainedPoll(BlockChild child) {
        return drainPoll();
    }

    // ------------------------------------------------------------------ context moves (BlockLayer.setAioContext)

    void detachAioContext() {
        driver.detachAioContext(ctx);
        drain.detachAioContext(ctx); // a drained node's disable moves with it
    }

    void attachAioContext(AioContext newCtx) {
        ctx = newCtx;
        drain.attachAioContext(newCtx);
        driver.attachAioContext(newCtx);
    }

    // ------------------------------------------------------------------ migration hand-off

    /** Flushes and marks the node inactive: writes then fail with -EPERM until {@link #activate()}. */
    int inactivate() {
        if (inactive) {
            return 0;
        }
        int ret = flushSync();
        if (ret < 0) {
            return ret;
        }
        ret = driver.inactivate();
        if (ret < 0) {
            return ret;
        }
        inactive = true;
        return 0;
    }

    int activate() {
        if (!inactive) {
            return 0;
        }
        int ret = driver.activate();
        if (ret == 0) {
            inactive = false;
        }
        return ret;
    }

    public String describe() {
        return "node '" + name + "' (" + driver.describe() + ") ctx=" + ctx.name() + " in_flight=" + inFlight
                + " quiesce=" + drain.quiesceCounter() + (readOnly ? " read-only" : "") + (inactive ? " inactive" : "")
                + (closed ? " closed" : "");
    }

    List<BlockNode> childNodes() {
        List<BlockNode> l = new ArrayList<>();
        for (BlockChild c : children) {
            l.add(c.node());
        }
        return l;
    }

    @Override
    public String toString() {
        return "BlockNode(" + name + ")";
    }
}
