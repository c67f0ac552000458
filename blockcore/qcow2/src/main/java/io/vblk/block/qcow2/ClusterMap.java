package io.vblk.block.qcow2;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The guest-to-host mapping: the L1 table (whole, in memory) and the L2
 * tables (in a bounded {@link MetadataCache}). It mirrors the table access
 * of block/qcow2-cluster.c: {@code l2_load}, {@code l2_allocate} and the
 * lookup part of {@code qcow2_get_host_offset}.
 *
 * <p>{@link #peek} is the lock-free lookup of the request fast path; the
 * methods that may do I/O ({@link #load}, {@link #allocate}) run under the
 * {@link MetadataLock}. A new L2 table starts zeroed and dirty in the cache
 * and its L1 entry is changed in memory; the {@link Checkpoint} writes the
 * table before the L1 entry that points to it.
 */
final class ClusterMap {
    private static final Logger LOG = LoggerFactory.getLogger(ClusterMap.class);

    final Layout g;
    final NativeTable l1;
    final MetadataCache l2;
    private final Refcounts refcounts;
    private final String image;

    ClusterMap(Layout g, String image, NativeTable l1, MetadataCache l2, Refcounts refcounts) {
        this.g = g;
        this.image = image;
        this.l1 = l1;
        this.l2 = l2;
        this.refcounts = refcounts;
    }

    /** Host offset of the L2 table of {@code l1Index}, 0 if none. */
    long l2Offset(int l1Index) {
        return l1.get(l1Index) & L2Entry.OFFSET_MASK;
    }

    /** The resident L2 table of {@code l1Index}, or null (not allocated or not cached). */
    MetadataCache.Entry peek(int l1Index) {
        long off = l2Offset(l1Index);
        return off == 0 ? null : l2.peek(l1Index, off);
    }

    /**
     * Makes the L2 table of {@code l1Index} resident if it exists; completes
     * with 0 (then {@link #peek} answers) or -errno. Under the metadata lock.
     */
    void load(int l1Index, BlockCompletion cb) {
        long off = l2Offset(l1Index);
        if (off == 0) {
            cb.complete(0);
            return;
        }
        if ((off & g.clusterMask) != 0) {
            LOG.error("qcow2 image '{}': L2 table offset 0x{} of L1 entry {} is not cluster aligned (corrupt image)",
                    image, Long.toHexString(off), l1Index);
            cb.complete(-Errno.EIO);
            return;
        }
        l2.load(l1Index, off, cb);
    }

    /**
     * Gives L1 entry {@code l1Index} (currently 0) a new, zeroed L2 table:
     * room in the cache first, then a cluster, then the table and the L1
     * entry change in memory. Under the metadata lock.
     */
    void allocate(int l1Index, BlockCompletion cb) {
        l2.makeFreeSlot(ret -> {
            if (ret < 0) {
                cb.complete(ret);
                return;
            }
            refcounts.allocate(1, off -> {
                if (off < 0) {
                    cb.complete((int) off);
                    return;
                }
                l2.create(l1Index, off);
                l1.set(l1Index, off | L2Entry.COPIED);
                cb.complete(0);
            });
        });
    }
}
