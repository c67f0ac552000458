package io.vblk.block.qcow2;

import io.vblk.block.BlockNode;

/**
 * Where the next run of a write goes, read from the resident L2 table: QEMU's
 * decision between {@code handle_copied} (in place: allocated clusters with
 * refcount 1, contiguous on the host, counted as
 * {@code count_single_write_clusters} does) and {@code handle_alloc}
 * ({@code cluster_needs_new_alloc}), plus the zero/discard cases that change
 * L2 entries only or have nothing to do. One per {@link WriteRequest}; the
 * answer's length and host offset are left in {@link #runLen} and
 * {@link #runHost}, so classifying allocates nothing.
 */
final class WriteClassifier {
    /** Write the run in place at {@link #runHost}. */
    static final int C_INPLACE = 0;
    /** Nothing to do for the run (already zero, or a partial cluster of a discard). */
    static final int C_SKIP = 1;
    /** The L2 table is not resident: take the lock and load it. */
    static final int C_NOT_RESIDENT = 2;
    /** The clusters need new host clusters (copy-on-write). */
    static final int C_ALLOCATE = 3;
    /** Whole clusters of a zero or discard: an L2-only change. */
    static final int C_METADATA = 4;
    /** A misaligned host offset: the image is corrupt. */
    static final int C_CORRUPT = 5;

    private final Qcow2Driver d;
    /** The classified run: its length and (in place) the host offset of its start. */
    long runLen;
    long runHost;

    WriteClassifier(Qcow2Driver d) {
        this.d = d;
    }

    /** Whether {@code p} starts a cluster that [.., end) covers whole (the image's last cluster may be short). */
    boolean fullClusterAt(long p, long end) {
        Layout g = d.layout();
        long cs = g.clusterStart(p);
        return p == cs && end >= Math.min(cs + g.clusterSize, g.size);
    }

    /** Whether [pos, pos+n) of a cluster mapped by {@code e} already reads as zeroes. */
    private boolean readsZero(long e, long pos) {
        int k = L2Entry.kind(e);
        if (L2Entry.readsAsZero(k)) {
            return true;
        }
        if (k != L2Entry.UNALLOCATED) {
            return false;
        }
        BlockNode b = d.backing();
        return b == null || pos >= b.length();
    }

    /**
     * Classifies the run at {@code pos} of a request of kind {@code op} ending
     * at {@code end}, with the resident L2 table (lock-free or under the
     * lock): sets {@link #runLen} (and {@link #runHost} in place).
     */
    int classify(int op, long pos, long end) {
        Layout g = d.layout();
        int l1 = g.l1Index(pos);
        long l2End = Math.min(end, g.l2RangeEnd(l1));
        long clusterEnd = Math.min(g.clusterStart(pos) + g.clusterSize, end);
        boolean full = fullClusterAt(pos, end);
        if (op == WriteRequest.OP_DISCARD && !full) {
            runLen = clusterEnd - pos;
            return C_SKIP;
        }
        long l2off = d.map().l2Offset(l1);
        MetadataCache.Entry t = null;
        if (l2off != 0) {
            t = d.map().l2.peek(l1, l2off);
            if (t == null) {
                return C_NOT_RESIDENT;
            }
        }
        int i = g.l2Index(pos);
        long e = t == null ? 0 : t.getLong(i);
        if (op != WriteRequest.OP_WRITE) {
            if (full) {
                return C_METADATA;
            }
            if (readsZero(e, pos)) {
                runLen = clusterEnd - pos;
                return C_SKIP;
            }
            l2End = clusterEnd; // a partial cluster written with zeroes
        }
        if (!L2Entry.writableInPlace(e)) {
            return C_ALLOCATE;
        }
        long host = L2Entry.hostOffset(e);
        if ((host & g.clusterMask) != 0) {
            return C_CORRUPT;
        }
        long n = Math.min(g.clusterStart(pos) + g.clusterSize, l2End) - pos;
        long expect = host + g.clusterSize;
        for (int j = i + 1; pos + n < l2End; j++) {
            long e2 = t.getLong(j);
            if (!L2Entry.writableInPlace(e2) || L2Entry.hostOffset(e2) != expect) {
                break;
            }
            expect += g.clusterSize;
            n += Math.min(g.clusterSize, l2End - (pos + n));
        }
        runHost = host + (pos & g.clusterMask);
        runLen = n;
        return C_INPLACE;
    }
}
