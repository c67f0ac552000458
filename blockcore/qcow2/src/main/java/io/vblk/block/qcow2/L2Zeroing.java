package io.vblk.block.qcow2;

import io.vblk.block.BlockFlags;

/**
 * Whole clusters of a write-zeroes or discard: an L2-only change, QEMU's
 * {@code zero_in_l2_slice} and {@code discard_in_l2_slice}. Version 3 images
 * get the zero flag (keeping the host cluster of a write-zeroes without
 * {@link BlockFlags#MAY_UNMAP}); a discard makes clusters unallocated unless
 * a backing file would show through; version 2 can only deallocate. A host
 * cluster no entry points to any more is freed once the change is durable.
 * Under the metadata lock, with the L2 table resident.
 */
final class L2Zeroing {
    private L2Zeroing() {
    }

    /** Rewrites entries [i0, i0+k) of the resident table {@code t}. */
    static void apply(Qcow2Driver d, MetadataCache.Entry t, int i0, int k, boolean discard, int flags) {
        long tag = d.freeTag();
        for (int j = 0; j < k; j++) {
            long old = t.getLong(i0 + j);
            long nw = zeroedEntry(d, old, discard, flags);
            if (nw != old) {
                t.putLong(i0 + j, nw);
                if (L2Entry.hostOffset(nw) == 0) {
                    d.freeOld(old, tag, true);
                }
            }
        }
    }

    /** The entry a whole cluster gets from a zero or discard request. */
    private static long zeroedEntry(Qcow2Driver d, long old, boolean discard, int flags) {
        boolean v3 = d.version() >= 3;
        if (discard) {
            return v3 && d.backing() != null ? L2Entry.ZERO : 0;
        }
        if (!v3) {
            return 0; // version 2 without a backing file: unallocated reads as zeroes
        }
        int k = L2Entry.kind(old);
        boolean keep = (flags & BlockFlags.MAY_UNMAP) == 0 && (old & L2Entry.COPIED) != 0
                && (k == L2Entry.NORMAL || k == L2Entry.ZERO_ALLOC);
        return keep ? L2Entry.hostOffset(old) | L2Entry.ZERO | L2Entry.COPIED : L2Entry.ZERO;
    }
}
