package io.vblk.block.qcow2;

import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * References dropped from L2 entries (discard, write-zeroes with unmap, a
 * write that moved a compressed or shared cluster) whose refcount decrease
 * waits: QEMU frees at once and orders the refcount block after the L2 table
 * with {@code qcow2_cache_set_dependency}; vblk defers the decrease instead.
 *
 * <p>A free is applied by the {@link Checkpoint} only when (1) the L2 change
 * that dropped the reference is durable (it was recorded before the
 * checkpoint began, and the checkpoint wrote and flushed the L2 tables), and
 * (2) every request that was in flight when it was recorded has completed
 * (its tag, the next request sequence number then, is at most the oldest
 * sequence number in flight). So on-disk refcounts never fall below the
 * references on disk (a crash leaks, never corrupts), and a cluster is never
 * reallocated while a request that looked it up earlier still reads or
 * writes it. Guest discards also punch the freed host range, before the
 * lock lets anyone reallocate it. Under the {@link MetadataLock}.
 */
final class DeferredFrees {
    /** One dropped reference to [offset, offset+bytes). */
    static final class Free {
        final long offset;
        long bytes;
        final long tag;
        final boolean punch;

        Free(long offset, long bytes, long tag, boolean punch) {
            this.offset = offset;
            this.bytes = bytes;
            this.tag = tag;
            this.punch = punch;
        }
    }

    private final Layout g;
    private final Refcounts refcounts;
    private final Supplier<BlockNode> file;
    private final List<Free> pending = new ArrayList<>();

    DeferredFrees(Layout g, Refcounts refcounts, Supplier<BlockNode> file) {
        this.g = g;
        this.refcounts = refcounts;
        this.file = file;
    }

    /**
     * Records that one reference to [offset, offset+bytes) was dropped; tag:
     * the sequence number the next request will get. {@code punch}: a guest
     * discard, deallocate the host range once its refcount reaches 0.
     * Adjacent cluster frees of one moment merge into one range.
     */
    void defer(long offset, long bytes, long tag, boolean punch) {
        if (!pending.isEmpty()) {
            Free last = pending.get(pending.size() - 1);
            if (last.tag == tag && last.punch == punch && last.offset + last.bytes == offset
                    && ((offset | last.offset) & g.clusterMask) == 0 && (bytes & g.clusterMask) == 0) {
                last.bytes += bytes;
                return;
            }
        }
        pending.add(new Free(offset, bytes, tag, punch));
    }

    boolean isEmpty() {
        return pending.isEmpty();
    }

    int size() {
        return pending.size();
    }

    /** Applies every free whose tag is at most {@code oldestInFlight}; the others stay for a later checkpoint. */
    void apply(long oldestInFlight, BlockCompletion cb) {
        new Apply(oldestInFlight, cb).next();
    }

    private final class Apply implements BlockCompletion {
        final long oldest;
        final BlockCompletion cb;
        int i;
        Free cur;
        boolean punching;

        Apply(long oldest, BlockCompletion cb) {
            this.oldest = oldest;
            this.cb = cb;
        }

        void next() {
            while (i < pending.size()) {
                Free f = pending.get(i);
                if (f.tag > oldest) {
                    i++;
                    continue;
                }
                cur = f;
                punching = false;
                refcounts.update(f.offset, f.bytes, -1, this);
                return;
            }
            cb.complete(0);
        }

        @Override
        public void complete(int ret) {
            if (punching) {
                next(); // a failed punch only leaves the space allocated in the host file
                return;
            }
            if (ret < 0) {
                cb.complete(ret); // the free stays pending; the next checkpoint retries it
                return;
            }
            pending.remove(i);
            if (cur.punch && ret == 1) {
                punching = true;
                file.get().pdiscard(cur.offset, cur.bytes, this);
                return;
            }
            next();
        }
    }
}
