package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlkDebugInjectError;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockFlags;
import io.vblk.block.IoVec;
import io.vblk.block.ZeroBuffer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A guest write, write-zeroes or discard: QEMU's
 * {@code qcow2_co_pwritev_part} (with {@code qcow2_alloc_host_offset},
 * {@code perform_cow} and {@code qcow2_alloc_cluster_link_l2}),
 * {@code qcow2_co_pwrite_zeroes} and {@code qcow2_co_pdiscard}.
 *
 * <p>The range is walked in runs within one L2 table:
 * <ul>
 * <li><b>In place</b>: clusters that are allocated with refcount 1
 *     ({@code COPIED}) are written straight to their host clusters, without
 *     the metadata lock when the L2 table is resident: overwrites run in
 *     parallel and allocate nothing.</li>
 * <li><b>Allocation</b> (unallocated, zero, compressed or shared clusters),
 *     in three phases. (1) Under the lock: wait for any in-flight
 *     {@link AllocationRun} on these guest clusters, allocate contiguous host
 *     clusters (their refcounts rise in the cache now) and register the run.
 *     (2) Without the lock: read the copy-on-write head and tail from the old
 *     source (backing file, zeroes, compressed or shared cluster) and write
 *     head + guest data + tail with one {@code pwritev}. (3) Under the lock:
 *     point the L2 entries at the new clusters, defer freeing the old ones,
 *     end the run and wake its waiters. The data is written before the L2
 *     entry that points to it changes, even in memory, and the checkpoint
 *     writes refcounts and flushes before it writes any L2 table.</li>
 * <li><b>Zero / discard</b> of whole clusters changes L2 entries only (the
 *     v3 zero flag, or unallocated where that reads the same); partial
 *     clusters of a write-zeroes that do not already read as zeroes are
 *     written with zeroes like a write; partial clusters of a discard are
 *     left alone (discard is advisory).</li>
 * </ul>
 * A write with {@link BlockFlags#FUA} ends with a metadata checkpoint and a
 * flush. Which case a run is decided by {@link WriteClassifier}; the L2-only
 * change of whole zeroed or discarded clusters is {@link L2Zeroing}.
 */
final class WriteRequest extends Qcow2Request implements Refcounts.AllocCallback {
    private static final Logger LOG = LoggerFactory.getLogger(WriteRequest.class);

    static final int OP_WRITE = 0;
    static final int OP_ZERO = 1;
    static final int OP_DISCARD = 2;

    private static final int NEXT = 0;
    private static final int AUTOCLEAR_LOCKED = 1;
    private static final int AUTOCLEAR_DONE = 2;
    private static final int LOCKED = 3;
    private static final int LOCKED_L2 = 4;
    private static final int INPLACE_DONE = 5;
    private static final int ALLOCATED = 6;
    private static final int COW_HEAD = 7;
    private static final int COW_TAIL = 8;
    private static final int WRITE_DATA = 9;
    private static final int DATA_WRITTEN = 10;
    private static final int LINK_LOCKED = 11;
    private static final int LINK_L2 = 12;
    private static final int ABORT_LOCKED = 13;
    private static final int ABORT_DONE = 14;
    private static final int FUA_LOCKED = 15;
    private static final int FUA_DONE = 16;

    private final ClusterReader reader;
    /** Classifies the run at {@code pos}; holds its length and in-place host offset. */
    private final WriteClassifier runs;
    private final AllocationRun run;
    private final IoVec src = new IoVec(4);
    private final IoVec wiov = new IoVec(8);
    private final IoVec cowIov = new IoVec(1);
    private int op;
    private int flags;
    private long offset;
    private long end;
    private long pos;
    private IoVec qiov;
    private long allocResult;
    private long writeEnd;
    private long headLen;
    private long tailLen;
    private BufferPool.Buffer head;
    private BufferPool.Buffer tail;
    private int savedError;
    private int reloads;

    WriteRequest(Qcow2Driver d) {
        super(d);
        reader = new ClusterReader(d);
        runs = new WriteClassifier(d);
        run = new AllocationRun();
    }

    void start(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        this.op = op;
        this.offset = offset;
        this.end = offset + bytes;
        this.pos = offset;
        this.qiov = qiov;
        this.flags = flags;
        this.reloads = 0;
        begin(cb, NEXT);
    }

    @Override
    void step() {
        for (;;) {
            switch (state) {
                case NEXT:
                    if (pos >= end) {
                        if ((flags & BlockFlags.FUA) != 0) {
                            lock(FUA_LOCKED);
                            return;
                        }
                        finish(0);
                        return;
                    }
                    if (d.autoclearPending()) {
                        lock(AUTOCLEAR_LOCKED);
                        return;
                    }
                    switch (runs.classify(op, pos, end)) {
                        case WriteClassifier.C_INPLACE:
                            writeInPlace();
                            return;
                        case WriteClassifier.C_SKIP:
                            pos += runs.runLen;
                            continue;
                        default:
                            lock(LOCKED);
                            return;
                    }
                case AUTOCLEAR_LOCKED:
                    if (!d.autoclearPending()) {
                        unlock();
                        state = NEXT;
                        continue;
                    }
                    state = AUTOCLEAR_DONE;
                    d.clearAutoclear(this);
                    return;
                case AUTOCLEAR_DONE:
                    unlock();
                    if (ret < 0) {
                        finish(ret);
                        return;
                    }
                    state = NEXT;
                    continue;
                case LOCKED:
                    if (lockedLookup()) {
                        continue;
                    }
                    return;
                case LOCKED_L2:
                    if (ret < 0) {
                        unlock();
                        finish(ret);
                        return;
                    }
                    if (!underLock()) {
                        return;
                    }
                    continue;
                case INPLACE_DONE:
                    if (ret < 0) {
                        finish(ret);
                        return;
                    }
                    pos += runs.runLen;
                    state = NEXT;
                    continue;
                case ALLOCATED:
                    if (allocResult < 0) {
                        unlock();
                        finish((int) allocResult);
                        return;
                    }
                    startCow();
                    continue;
                case COW_HEAD:
                    if (headLen > 0) {
                        head = d.clusterBuffers().take();
                        cowIov.reset();
                        cowIov.add(head.address, (int) headLen);
                        state = COW_TAIL;
                        reader.read(run.old[0], run.first << d.layout().clusterBits, headLen, cowIov, 0, this);
                        return;
                    }
                    ret = 0;
                    state = COW_TAIL;
                    continue;
                case COW_TAIL:
                    if (ret < 0) {
                        abort(ret);
                        return;
                    }
                    if (tailLen > 0) {
                        tail = d.clusterBuffers().take();
                        cowIov.reset();
                        cowIov.add(tail.address, (int) tailLen);
                        state = WRITE_DATA;
                        reader.read(run.old[run.count - 1], writeEnd, tailLen, cowIov, 0, this);
                        return;
                    }
                    ret = 0;
                    state = WRITE_DATA;
                    continue;
                case WRITE_DATA:
                    if (ret < 0) {
                        abort(ret);
                        return;
                    }
                    writeAllocated();
                    return;
                case DATA_WRITTEN:
                    releaseBuffers();
                    if (ret < 0) {
                        abort(ret);
                        return;
                    }
                    lock(LINK_LOCKED);
                    return;
                case LINK_LOCKED:
                    state = LINK_L2;
                    d.map().load(run.l1Index, this);
                    return;
                case LINK_L2:
                    if (ret < 0) {
                        savedError = ret;
                        state = ABORT_LOCKED;
                        continue;
                    }
                    link();
                    continue;
                case ABORT_LOCKED:
                    state = ABORT_DONE;
                    d.refcounts().update(run.host, (long) run.count << d.layout().clusterBits, -1, this);
                    return;
                case ABORT_DONE:
                    if (ret < 0) {
                        LOG.warn("qcow2 image '{}': releasing the clusters of a failed write failed: errno {}", d.image(),
                                -ret);
                    }
                    endRun();
                    finish(savedError);
                    return;
                case FUA_LOCKED:
                    state = FUA_DONE;
                    d.checkpoint().run(true, this);
                    return;
                case FUA_DONE:
                    unlock();
                    finish(ret);
                    return;
                default:
                    throw new IllegalStateException("write state " + state);
            }
        }
    }

    // ------------------------------------------------------------------ in place

    /** Puts the guest data for [pos, pos+n) into {@link #src}: the caller's vector or zeroes. */
    private IoVec source(long n) {
        if (op == OP_WRITE) {
            qiov.sliceInto(src, pos - offset, n);
        } else {
            src.reset();
            ZeroBuffer.addTo(src, n); // zero writes cover at most one partial cluster
        }
        return src;
    }

    private void writeInPlace() {
        state = INPLACE_DONE;
        d.file().debugEvent(BlkDebugInjectError.WRITE_AIO); // qcow2's data write, as QEMU raises it
        d.file().pwritev(runs.runHost, runs.runLen, source(runs.runLen), 0, this);
    }

    // ------------------------------------------------------------------ under the metadata lock

    /** Holding the lock: makes the L2 table of {@code pos} resident (or allocates it). True to continue at once. */
    private boolean lockedLookup() {
        Layout g = d.layout();
        int l1 = g.l1Index(pos);
        state = LOCKED_L2;
        if (d.map().l2Offset(l1) != 0) {
            d.map().load(l1, this);
            return false;
        }
        if (op != OP_WRITE && !d.zeroNeedsL2()) {
            // unallocated already reads as zeroes (no backing file): nothing to do in this table
            unlock();
            pos = Math.min(end, g.l2RangeEnd(l1));
            state = NEXT;
            return true;
        }
        d.map().allocate(l1, this);
        return false;
    }

    /** Holding the lock with the L2 table resident: acts on the run at {@code pos}. False when waiting. */
    private boolean underLock() {
        switch (runs.classify(op, pos, end)) {
            case WriteClassifier.C_SKIP:
                unlock();
                pos += runs.runLen;
                state = NEXT;
                return true;
            case WriteClassifier.C_INPLACE:
                unlock();
                writeInPlace();
                return false;
            case WriteClassifier.C_NOT_RESIDENT:
                if (++reloads > 16) {
                    unlock();
                    finish(-Errno.EIO);
                    return false;
                }
                state = LOCKED;
                return true;
            case WriteClassifier.C_CORRUPT:
                unlock();
                LOG.error("qcow2 image '{}': misaligned host cluster at guest offset {} (corrupt image)", d.image(), pos);
                finish(-Errno.EIO);
                return false;
            case WriteClassifier.C_METADATA:
                return zeroClusters();
            default:
                return prepareAllocation();
        }
    }

    /**
     * The first cluster of [first, first+n) that an in-flight allocation owns,
     * or -1. When it is {@code first} itself, the request queues on that run.
     */
    private long busyFrom(long first, int n) {
        AllocationRun other = d.firstOverlap(first, n);
        if (other == null) {
            return -1;
        }
        if (other.first <= first) {
            other.addWaiter(this);
            return first;
        }
        return other.first;
    }

    private boolean prepareAllocation() {
        Layout g = d.layout();
        int l1 = g.l1Index(pos);
        MetadataCache.Entry t = d.map().peek(l1);
        long l2End = Math.min(end, g.l2RangeEnd(l1));
        int i0 = g.l2Index(pos);
        long first = pos >>> g.clusterBits;
        int max = op == OP_WRITE ? g.refblockEntries : 1;
        int k = 0;
        for (long c = g.clusterStart(pos); c < l2End && k < max; c += g.clusterSize) {
            if (k > 0 && L2Entry.writableInPlace(t.getLong(i0 + k))) {
                break;
            }
            k++;
        }
        long busy = busyFrom(first, k);
        if (busy == first) {
            unlock();
            state = NEXT; // woken when the other run ends
            return false;
        }
        if (busy > first) {
            k = (int) (busy - first);
        }
        run.first = first;
        run.count = k;
        run.l1Index = l1;
        run.l2Index = i0;
        run.reserve(k);
        for (int j = 0; j < k; j++) {
            run.old[j] = t.getLong(i0 + j);
        }
        state = ALLOCATED;
        d.refcounts().allocate(k, this);
        return false;
    }

    @Override
    public void allocated(long hostOrError) {
        allocResult = hostOrError;
        kick();
    }

    /** Registers the run, drops the lock and sizes the copy-on-write head and tail. */
    private void startCow() {
        Layout g = d.layout();
        run.host = allocResult;
        d.addRun(run);
        unlock();
        long runStart = run.first << g.clusterBits;
        long runEnd = runStart + ((long) run.count << g.clusterBits);
        writeEnd = Math.min(end, runEnd);
        headLen = pos - runStart;
        tailLen = runEnd - writeEnd;
        state = COW_HEAD;
    }

    private void writeAllocated() {
        Layout g = d.layout();
        wiov.reset();
        if (headLen > 0) {
            wiov.add(head.address, (int) headLen);
        }
        IoVec s = source(writeEnd - pos);
        for (int i = 0; i < s.count(); i++) {
            wiov.add(s.address(i), s.length(i));
        }
        if (tailLen > 0) {
            wiov.add(tail.address, (int) tailLen);
        }
        state = DATA_WRITTEN;
        d.file().debugEvent(BlkDebugInjectError.WRITE_AIO);
        d.file().pwritev(run.host, (long) run.count << g.clusterBits, wiov, 0, this);
    }

    /** Phase 3, holding the lock: the L2 entries now point at the written clusters. */
    private void link() {
        Layout g = d.layout();
        MetadataCache.Entry t = d.map().peek(run.l1Index);
        long tag = d.freeTag();
        for (int j = 0; j < run.count; j++) {
            t.putLong(run.l2Index + j, (run.host + ((long) j << g.clusterBits)) | L2Entry.COPIED);
            d.freeOld(run.old[j], tag, false);
        }
        pos = writeEnd;
        endRun();
        state = NEXT;
    }

    /** Phase 2 failed: give the new clusters back (nothing points to them) and fail the request. */
    private void abort(int err) {
        releaseBuffers();
        savedError = err;
        lock(ABORT_LOCKED);
    }

    /** Unregisters the run, releases the lock and restarts the requests that waited for it. */
    private void endRun() {
        d.removeRun(run);
        unlock();
        Qcow2Request w = run.takeWaiters();
        while (w != null) {
            Qcow2Request n = w.nextWaiter;
            w.nextWaiter = null;
            w.kick();
            w = n;
        }
    }

    /** Whole clusters of a write-zeroes or discard: an L2-only change. */
    private boolean zeroClusters() {
        Layout g = d.layout();
        int l1 = g.l1Index(pos);
        MetadataCache.Entry t = d.map().peek(l1);
        long l2End = Math.min(end, g.l2RangeEnd(l1));
        int i0 = g.l2Index(pos);
        long first = pos >>> g.clusterBits;
        int k = 0;
        for (long c = pos; c < l2End && runs.fullClusterAt(c, end); c += g.clusterSize) {
            k++;
        }
        long busy = busyFrom(first, k);
        if (busy == first) {
            unlock();
            state = NEXT;
            return false;
        }
        if (busy > first) {
            k = (int) (busy - first);
        }
        L2Zeroing.apply(d, t, i0, k, op == OP_DISCARD, flags);
        unlock();
        pos = Math.min(end, pos + ((long) k << g.clusterBits));
        state = NEXT;
        return true;
    }

    private void releaseBuffers() {
        d.clusterBuffers().give(head);
        d.clusterBuffers().give(tail);
        head = null;
        tail = null;
    }

    @Override
    void recycle() {
        qiov = null;
        d.recycle(this);
    }

    @Override
    String traceName() {
        return op == OP_WRITE ? "pwritev" : op == OP_ZERO ? "pwrite_zeroes" : "pdiscard";
    }
}
