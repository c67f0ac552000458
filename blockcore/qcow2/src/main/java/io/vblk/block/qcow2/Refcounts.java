package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;

import java.nio.ByteBuffer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Host cluster reference counts and cluster allocation: QEMU's
 * block/qcow2-refcount.c ({@code qcow2_alloc_clusters},
 * {@code update_refcount}, {@code alloc_refcount_block},
 * {@code qcow2_free_clusters}). The refcount table is held whole in memory
 * ({@link NativeTable}); refcount blocks live in a bounded
 * {@link MetadataCache}. Every method runs under the {@link MetadataLock}.
 *
 * <p><b>Allocation</b> scans for {@code n} contiguous clusters with refcount 0
 * from {@code freeClusterIndex} (below which every cluster is known used),
 * sets their refcounts to 1 in the cached blocks and returns the host offset.
 * The scan is a retry loop over synchronous attempts: an attempt that needs a
 * refcount block that is not resident returns and the loop loads it; one
 * that reaches a range without a refcount block creates a self-describing
 * block in the first cluster of that range; one that runs past the refcount
 * table grows the table ({@link RefcountTableGrowth}). An attempt mutates
 * nothing until every block it needs is resident, so a retry is always safe.
 *
 * <p>Dropped references are not applied here directly but through
 * {@link DeferredFrees}, once the L2 change that dropped them is durable.
 */
final class Refcounts {
    private static final Logger LOG = LoggerFactory.getLogger(Refcounts.class);

    /** Attempt outcomes (below every -errno). */
    private static final long NEED_LOAD = -1000;
    private static final long NEED_SLOT = -1001;
    private static final long NEED_GROW = -1002;

    /** Receives a host offset (>= 0) or -errno. */
    interface AllocCallback {
        void allocated(long hostOffsetOrError);
    }

    private final Layout g;
    private final String image;
    final MetadataCache blocks;
    private NativeTable table;
    private RefcountTableGrowth growth;
    /** Every cluster below this one is in use (cluster 0 always holds the header). */
    private long freeClusterIndex = 1;
    private long allocatedClusters;
    private long freedClusters;

    Refcounts(Layout g, String image, NativeTable table, MetadataCache blocks) {
        this.g = g;
        this.image = image;
        this.table = table;
        this.blocks = blocks;
        blocks.setCleaner(blocks::write); // a refcount block can be written at any time: see the class comment
    }

    void setGrowth(RefcountTableGrowth growth) {
        this.growth = growth;
    }

    NativeTable table() {
        return table;
    }

    void replaceTable(NativeTable t) {
        table = t;
        blocks.ensureKeys(t.entries);
    }

    long freeClusterIndex() {
        return freeClusterIndex;
    }

    // ------------------------------------------------------------------ refcount entries

    static long get(ByteBuffer bb, int base, int order, int i) {
        switch (order) {
            case 4:
                return bb.getShort(base + (i << 1)) & 0xffff;
            case 3:
                return bb.get(base + i) & 0xff;
            case 5:
                return bb.getInt(base + (i << 2)) & 0xffffffffL;
            case 6:
                return bb.getLong(base + (i << 3));
            default: { // 1, 2 or 4 bits, least significant bits first
                int bits = 1 << order;
                int bit = i * bits;
                return ((bb.get(base + (bit >>> 3)) & 0xff) >>> (bit & 7)) & ((1 << bits) - 1);
            }
        }
    }

    static void set(ByteBuffer bb, int base, int order, int i, long v) {
        switch (order) {
            case 4:
                bb.putShort(base + (i << 1), (short) v);
                break;
            case 3:
                bb.put(base + i, (byte) v);
                break;
            case 5:
                bb.putInt(base + (i << 2), (int) v);
                break;
            case 6:
                bb.putLong(base + (i << 3), v);
                break;
            default: {
                int bits = 1 << order;
                int bit = i * bits;
                int mask = ((1 << bits) - 1) << (bit & 7);
                int old = bb.get(base + (bit >>> 3)) & 0xff;
                bb.put(base + (bit >>> 3), (byte) ((old & ~mask) | (((int) v << (bit & 7)) & mask)));
                break;
            }
        }
    }

    private long get(MetadataCache.Entry b, long cluster) {
        return get(b.bb, 0, g.refcountOrder, (int) (cluster & (g.refblockEntries - 1)));
    }

    private void set(MetadataCache.Entry b, long cluster, long v) {
        set(b.bb, 0, g.refcountOrder, (int) (cluster & (g.refblockEntries - 1)), v);
        b.dirty = true;
    }

    /** The refcount of {@code cluster} if its block is resident (or has none: 0), else -1. Diagnostics and tests. */
    long cachedRefcount(long cluster) {
        long rt = cluster >>> g.refblockBits;
        if (rt >= table.entries) {
            return 0;
        }
        long boff = table.get((int) rt) & L2Entry.OFFSET_MASK;
        if (boff == 0) {
            return 0;
        }
        MetadataCache.Entry b = blocks.peek((int) rt, boff);
        return b == null ? -1 : get(b, cluster);
    }

    // ------------------------------------------------------------------ allocation

    /** Allocates {@code n} contiguous clusters ({@code n <= refblockEntries}) with refcount 1. */
    void allocate(int n, AllocCallback cb) {
        if (n < 1 || n > g.refblockEntries) {
            throw new IllegalArgumentException("allocation of " + n + " clusters");
        }
        new AllocOp(n, cb).run();
    }

    /** One allocation's retry loop: each round is a synchronous attempt, resumed after the I/O it asked for. */
    private final class AllocOp implements BlockCompletion {
        final int n;
        final AllocCallback cb;
        long cursor = freeClusterIndex;
        int needKey;
        long needOffset;
        /**
         * Blocks of the current candidate run, pinned so that loading the next
         * one cannot evict them: an attempt needs them all resident at once.
         */
        final MetadataCache.Entry[] pinned = new MetadataCache.Entry[4];
        int pins;

        AllocOp(int n, AllocCallback cb) {
            this.n = n;
            this.cb = cb;
        }

        void pin(MetadataCache.Entry e) {
            for (int i = 0; i < pins; i++) {
                if (pinned[i] == e) {
                    return;
                }
            }
            if (pins < pinned.length) { // a candidate spans at most two blocks; never more than four
                e.pins++;
                pinned[pins++] = e;
            }
        }

        void unpinAll() {
            for (int i = 0; i < pins; i++) {
                pinned[i].pins--;
                pinned[i] = null;
            }
            pins = 0;
        }

        void run() {
            for (;;) {
                long r = tryAllocate(this);
                if (r >= 0 || r > NEED_LOAD) {
                    unpinAll();
                }
                if (r >= 0) {
                    allocatedClusters += n;
                    cb.allocated(r);
                    return;
                }
                if (r == NEED_LOAD) {
                    blocks.load(needKey, needOffset, this);
                    return;
                }
                if (r == NEED_SLOT) {
                    blocks.makeFreeSlot(this);
                    return;
                }
                if (r == NEED_GROW) {
                    growth.grow(needKey, this);
                    return;
                }
                cb.allocated(r);
                return;
            }
        }

        @Override
        public void complete(int ret) {
            if (ret < 0) {
                unpinAll();
                cb.allocated(ret);
            } else {
                run();
            }
        }
    }

    /** One synchronous attempt; mutates only once every block it touches is resident. */
    private long tryAllocate(AllocOp op) {
        long c = Math.max(op.cursor, freeClusterIndex);
        int n = op.n;
        scan:
        for (;;) {
            if (((c + n) << g.clusterBits) > L2Entry.OFFSET_MASK) {
                LOG.error("qcow2 image '{}': no room for {} more clusters below 64 PB", image, n);
                return -Errno.ENOSPC;
            }
            for (int i = 0; i < n; i++) {
                long ci = c + i;
                long rt = ci >>> g.refblockBits;
                if (rt >= table.entries) {
                    op.cursor = c;
                    op.needKey = (int) Math.min(rt, Integer.MAX_VALUE - 1);
                    return NEED_GROW;
                }
                long boff = table.get((int) rt) & L2Entry.OFFSET_MASK;
                if (boff == 0) {
                    if (!blocks.hasFreeSlot()) {
                        op.cursor = c;
                        return NEED_SLOT;
                    }
                    int r = createSelfDescribingBlock((int) rt);
                    if (r < 0) {
                        return r;
                    }
                    continue scan;
                }
                MetadataCache.Entry b = blocks.peek((int) rt, boff);
                if (b == null) {
                    op.cursor = c;
                    op.needKey = (int) rt;
                    op.needOffset = boff;
                    return NEED_LOAD;
                }
                op.pin(b);
                if (get(b, ci) != 0) {
                    if (ci == freeClusterIndex) {
                        freeClusterIndex = ci + 1;
                    }
                    c = ci + 1;
                    op.unpinAll(); // a new candidate starts here
                    continue scan;
                }
            }
            break;
        }
        for (int i = 0; i < n; i++) {
            long ci = c + i;
            int rt = (int) (ci >>> g.refblockBits);
            set(blocks.peek(rt, table.get(rt) & L2Entry.OFFSET_MASK), ci, 1);
        }
        if (c == freeClusterIndex) {
            freeClusterIndex = c + n;
        }
        op.cursor = c + n;
        return c << g.clusterBits;
    }

    /**
     * A new refcount block for range {@code rt}, stored in the range's first
     * cluster and counting itself (QEMU's self-describing block in
     * {@code alloc_refcount_block}). Its table entry is written by the next
     * checkpoint, after the block itself.
     */
    private int createSelfDescribingBlock(int rt) {
        if (rt == 0) {
            LOG.error("qcow2 image '{}': the refcount table has no block for the header's clusters", image);
            return -Errno.EIO;
        }
        long off = ((long) rt << g.refblockBits) << g.clusterBits;
        MetadataCache.Entry b = blocks.create(rt, off);
        set(b, (long) rt << g.refblockBits, 1);
        table.set(rt, off);
        LOG.debug("qcow2 image '{}': new refcount block {} at 0x{}", image, rt, Long.toHexString(off));
        return 0;
    }

    // ------------------------------------------------------------------ updates

    /**
     * Adds {@code delta} to the refcount of every cluster touching
     * [offset, offset+bytes), one refcount block at a time (so any range works
     * with a small cache). Completes with 1 when every such refcount is now 0,
     * 0 otherwise, or -errno.
     */
    void update(long offset, long bytes, int delta, BlockCompletion cb) {
        new UpdateOp(offset, bytes, delta, cb).run();
    }

    private final class UpdateOp implements BlockCompletion {
        long cluster;
        final long last;
        final int delta;
        final BlockCompletion cb;
        boolean allZero = true;

        UpdateOp(long offset, long bytes, int delta, BlockCompletion cb) {
            this.cluster = offset >>> g.clusterBits;
            this.last = (offset + bytes - 1) >>> g.clusterBits;
            this.delta = delta;
            this.cb = cb;
        }

        void run() {
            while (cluster <= last) {
                long rt = cluster >>> g.refblockBits;
                long boff = rt < table.entries ? table.get((int) rt) & L2Entry.OFFSET_MASK : 0;
                if (boff == 0) {
                    LOG.error("qcow2 image '{}': cluster 0x{} has no refcount block (corrupt image)", image,
                            Long.toHexString(cluster << g.clusterBits));
                    cb.complete(-Errno.EIO);
                    return;
                }
                MetadataCache.Entry b = blocks.peek((int) rt, boff);
                if (b == null) {
                    blocks.load((int) rt, boff, this);
                    return;
                }
                long blockLast = Math.min(last, ((rt + 1) << g.refblockBits) - 1);
                for (; cluster <= blockLast; cluster++) {
                    long v = get(b, cluster) + delta;
                    if (v < 0 || v > g.maxRefcount()) {
                        LOG.error("qcow2 image '{}': refcount of cluster 0x{} would become {} (corrupt image)", image,
                                Long.toHexString(cluster << g.clusterBits), v);
                        cb.complete(v < 0 ? -Errno.EIO : -Errno.ERANGE);
                        return;
                    }
                    set(b, cluster, v);
                    if (v == 0) {
                        freedClusters++;
                        if (cluster < freeClusterIndex && cluster > 0) {
                            freeClusterIndex = cluster;
                        }
                    } else {
                        allZero = false;
                    }
                }
            }
            cb.complete(allZero ? 1 : 0);
        }

        @Override
        public void complete(int ret) {
            if (ret < 0) {
                cb.complete(ret);
            } else {
                run();
            }
        }
    }

    long allocatedClusters() {
        return allocatedClusters;
    }

    long freedClusters() {
        return freedClusters;
    }

    String describe() {
        return "refcounts: table " + table.entries + " entries at 0x" + Long.toHexString(table.fileOffset)
                + " free_cluster_index=" + freeClusterIndex + "; " + blocks.describe();
    }
}
