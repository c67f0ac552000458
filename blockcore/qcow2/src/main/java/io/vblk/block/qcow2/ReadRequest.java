package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A guest read: QEMU's {@code qcow2_co_preadv_part}. The range is walked in
 * runs of clusters with the same kind of mapping (and, for data, contiguous
 * host offsets) within one L2 table, each run read in one child request by
 * the {@link ClusterReader} straight into the guest's I/O vector.
 *
 * <p>Fast path: when the L2 table is resident the run is classified without
 * the metadata lock, and an allocated read costs one lookup and one
 * {@code preadv} on the file, allocating nothing. Only a cache miss takes
 * the lock, to load the table. Reads never wait for writes: a run whose
 * allocation is in flight still maps to its old source, which the
 * allocation's copy-on-write copies unchanged.
 */
final class ReadRequest extends Qcow2Request {
    private static final Logger LOG = LoggerFactory.getLogger(ReadRequest.class);

    private static final int NEXT = 0;
    private static final int LOCKED = 1;
    private static final int LOADED = 2;
    private static final int IO_DONE = 3;

    private final ClusterReader reader;
    private long offset;
    private long end;
    private long pos;
    private IoVec qiov;
    private long entry;
    private long runLen;
    private boolean corrupt;

    ReadRequest(Qcow2Driver d) {
        super(d);
        reader = new ClusterReader(d);
    }

    void start(long offset, long bytes, IoVec qiov, BlockCompletion cb) {
        this.offset = offset;
        this.end = offset + bytes;
        this.pos = offset;
        this.qiov = qiov;
        begin(cb, NEXT);
    }

    @Override
    void step() {
        for (;;) {
            switch (state) {
                case NEXT:
                    if (pos >= end) {
                        finish(0);
                        return;
                    }
                    if (!classify()) {
                        lock(LOCKED);
                        return;
                    }
                    issue();
                    return;
                case LOCKED:
                    state = LOADED;
                    d.map().load(d.layout().l1Index(pos), this);
                    return;
                case LOADED: {
                    if (ret < 0) {
                        unlock();
                        finish(ret);
                        return;
                    }
                    boolean ok = classify();
                    unlock();
                    if (!ok) {
                        state = NEXT; // evicted already (tiny cache): look again
                        continue;
                    }
                    issue();
                    return;
                }
                case IO_DONE:
                    if (ret < 0) {
                        finish(ret);
                        return;
                    }
                    pos += runLen;
                    state = NEXT;
                    continue;
                default:
                    throw new IllegalStateException("read state " + state);
            }
        }
    }

    /**
     * Finds the run at {@code pos}: sets {@link #entry} (the first cluster's
     * L2 entry) and {@link #runLen}. False when the L2 table is not resident.
     */
    private boolean classify() {
        Layout g = d.layout();
        int l1 = g.l1Index(pos);
        long l2End = Math.min(end, g.l2RangeEnd(l1));
        long l2off = d.map().l2Offset(l1);
        corrupt = false;
        if (l2off == 0) {
            entry = 0;
            runLen = l2End - pos;
            return true;
        }
        MetadataCache.Entry t = d.map().l2.peek(l1, l2off);
        if (t == null) {
            return false;
        }
        int i = g.l2Index(pos);
        long e = t.getLong(i);
        int kind = readKind(e);
        long n = Math.min(g.clusterStart(pos) + g.clusterSize, l2End) - pos;
        if (kind == L2Entry.NORMAL && (L2Entry.hostOffset(e) & g.clusterMask) != 0) {
            corrupt = true;
        } else if (kind != L2Entry.COMPRESSED_KIND) {
            long expect = L2Entry.hostOffset(e) + g.clusterSize;
            for (int j = i + 1; pos + n < l2End; j++) {
                long e2 = t.getLong(j);
                if (readKind(e2) != kind || (kind == L2Entry.NORMAL && L2Entry.hostOffset(e2) != expect)) {
                    break;
                }
                expect += g.clusterSize;
                n += Math.min(g.clusterSize, l2End - (pos + n));
            }
        }
        entry = e;
        runLen = n;
        return true;
    }

    /** Zero clusters with and without a preallocated host cluster read alike. */
    private static int readKind(long e) {
        int k = L2Entry.kind(e);
        return k == L2Entry.ZERO_ALLOC ? L2Entry.ZERO_PLAIN : k;
    }

    private void issue() {
        if (corrupt) {
            LOG.error("qcow2 image '{}': L2 entry {} at guest offset {} is not cluster aligned (corrupt image)", d.image(),
                    L2Entry.describe(entry), pos);
            finish(-Errno.EIO);
            return;
        }
        state = IO_DONE;
        reader.read(entry, pos, runLen, qiov, pos - offset, this);
    }

    @Override
    void recycle() {
        qiov = null;
        d.recycle(this);
    }

    @Override
    String traceName() {
        return "read";
    }
}
