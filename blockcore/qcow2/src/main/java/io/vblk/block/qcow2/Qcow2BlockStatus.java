package io.vblk.block.qcow2;

import io.vblk.aio.AioWait;
import io.vblk.block.BlockException;
import io.vblk.block.BlockStatus;

/**
 * Block status of a qcow2 image: QEMU's {@code qcow2_co_block_status}
 * (block/qcow2.c) over {@code qcow2_get_host_offset}'s cluster kinds —
 * unallocated (the backing file shows through), reads-as-zero, or data.
 * Control path only (jobs, {@code bdrv_is_allocated_above}): a missing L2
 * table is loaded synchronously.
 */
final class Qcow2BlockStatus {
    private final Qcow2Driver d;
    private final Layout g;
    private final ClusterMap map;
    private final MetadataLock lock;
    private final String image;

    Qcow2BlockStatus(Qcow2Driver d) {
        this.d = d;
        this.g = d.layout();
        this.map = d.map();
        this.lock = d.lock();
        this.image = d.image();
    }

    /**
     * Which layer holds [offset, offset+bytes): QEMU's
     * {@code qcow2_co_block_status}. Answers from the resident L2 table; a
     * table that is not resident is loaded first, waiting with
     * {@link AioWait#pollWhile} as QEMU's synchronous {@code bdrv_block_status}
     * does, so callers run in the home context (or hold its lock in the main
     * loop) and never on a request path. The answer covers a run of clusters
     * of one kind within one L2 table (unallocated runs may span tables).
     */
    BlockStatus blockStatus(long offset, long bytes) {
        d.formatNode().checkOwned("block status");
        long end = Math.min(g.size, offset + bytes);
        if (offset < 0 || offset >= end) {
            return BlockStatus.unallocated(0);
        }
        int l1 = g.l1Index(offset);
        if (map.l2Offset(l1) == 0) {
            long e = g.l2RangeEnd(l1);
            while (e < end && map.l2Offset(g.l1Index(e)) == 0) {
                e = g.l2RangeEnd(g.l1Index(e));
            }
            return unallocatedStatus(Math.min(e, end) - offset);
        }
        MetadataCache.Entry t = map.peek(l1);
        for (int attempt = 0; t == null; attempt++) {
            if (attempt == 3) {
                throw new BlockException("qcow2 image '" + image + "': the L2 table for offset " + offset
                        + " does not stay in the cache");
            }
            loadSync(l1);
            t = map.peek(l1);
        }
        long l2End = Math.min(end, g.l2RangeEnd(l1));
        int i = g.l2Index(offset);
        int cat = statusCategory(t.getLong(i));
        long n = Math.min(g.clusterStart(offset) + g.clusterSize, l2End) - offset;
        for (int j = i + 1; offset + n < l2End && statusCategory(t.getLong(j)) == cat; j++) {
            n += Math.min(g.clusterSize, l2End - (offset + n));
        }
        switch (cat) {
            case 0:
                return unallocatedStatus(n);
            case 1:
                return BlockStatus.zero(n);
            default:
                return BlockStatus.data(n);
        }
    }

    private static int statusCategory(long e) {
        int k = L2Entry.kind(e);
        return k == L2Entry.UNALLOCATED ? 0 : L2Entry.readsAsZero(k) ? 1 : 2;
    }

    private BlockStatus unallocatedStatus(long n) {
        return new BlockStatus(false, d.backing() == null, false, n);
    }

    /** Loads the L2 table of {@code l1} into the cache, polling the home context until done. */
    private void loadSync(int l1) {
        int[] result = {1};
        lock.acquire(() -> map.load(l1, r -> {
            lock.release();
            result[0] = r;
        }));
        AioWait.pollWhile(d.context(), () -> result[0] == 1);
        if (result[0] < 0) {
            throw new BlockException("qcow2 image '" + image + "': reading an L2 table failed: errno " + -result[0]);
        }
    }
}
