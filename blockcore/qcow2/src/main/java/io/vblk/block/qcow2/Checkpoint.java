package io.vblk.block.qcow2;

import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;

import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the cached metadata back in crash-consistent order: QEMU's
 * {@code qcow2_write_caches} with the cache dependencies of
 * {@code qcow2_cache_set_dependency} / {@code qcow2_cache_depends_on_flush},
 * and {@code qcow2_co_flush_to_os} followed by a flush of the file for a
 * guest flush. One instance per image, run under the {@link MetadataLock}.
 *
 * <ol>
 * <li>Dirty refcount blocks are written: a refcount may be high on disk
 *     (leak), never low, so blocks go first.</li>
 * <li>If the refcount table changed: flush (the blocks it points to are on
 *     disk), then write its dirty sectors.</li>
 * <li>If L2 tables or the L1 table are dirty: flush. This makes both the
 *     refcounts and the guest data that new L2 entries point to stable
 *     before any entry pointing to them is written.</li>
 * <li>Dirty L2 tables are written.</li>
 * <li>If the L1 table changed: flush (new L2 tables are on disk), then write
 *     its dirty sectors.</li>
 * <li>Flush, if anything was written or a guest flush asked for it.</li>
 * <li>Deferred frees recorded before this checkpoint are now backed by
 *     durable L2 entries; those no in-flight request can still be using are
 *     applied ({@link DeferredFrees#apply}). Their refcount blocks are
 *     written by the next checkpoint.</li>
 * </ol>
 */
final class Checkpoint implements BlockCompletion {
    private static final Logger LOG = LoggerFactory.getLogger(Checkpoint.class);

    private static final int IDLE = 0;
    private static final int REFBLOCKS = 1;
    private static final int REFTABLE_FLUSHED = 2;
    private static final int REFTABLE_WRITTEN = 3;
    private static final int DATA_FLUSHED = 4;
    private static final int L2_WRITTEN = 5;
    private static final int L1_FLUSHED = 6;
    private static final int L1_WRITTEN = 7;
    private static final int FINAL_FLUSHED = 8;
    private static final int FREES_APPLIED = 9;

    private final String image;
    private final Supplier<BlockNode> file;
    private final Refcounts refcounts;
    private final DeferredFrees frees;
    private final ClusterMap map;
    private final LongSupplier oldestInFlight;
    private final List<MetadataCache.Entry> batch = new ArrayList<>();
    private int state = IDLE;
    private boolean guestFlush;
    private boolean wrote;
    private int outstanding;
    private int firstError;
    private BlockCompletion done;
    private long runs;

    Checkpoint(String image, Supplier<BlockNode> file, Refcounts refcounts, DeferredFrees frees, ClusterMap map,
            LongSupplier oldestInFlight) {
        this.image = image;
        this.file = file;
        this.refcounts = refcounts;
        this.frees = frees;
        this.map = map;
        this.oldestInFlight = oldestInFlight;
    }

    /** Whether anything waits to be written or applied. */
    boolean needed() {
        return refcounts.blocks.dirtyCount() > 0 || refcounts.table().isDirty() || map.l2.dirtyCount() > 0
                || map.l1.isDirty() || !frees.isEmpty();
    }

    long runs() {
        return runs;
    }

    /** Runs the sequence; {@code guestFlush} ends it with a flush even if nothing was dirty. Under the lock. */
    void run(boolean guestFlush, BlockCompletion cb) {
        if (state != IDLE) {
            throw new IllegalStateException("qcow2 checkpoint of '" + image + "' already running");
        }
        runs++;
        this.guestFlush = guestFlush;
        this.done = cb;
        wrote = false;
        state = REFBLOCKS;
        writeBatch(refcountBlocks());
    }

    private List<MetadataCache.Entry> refcountBlocks() {
        batch.clear();
        refcounts.blocks.collectDirty(batch);
        return batch;
    }

    /** Writes every entry of {@code entries} in parallel; {@link #complete} runs once all finished. */
    private void writeBatch(List<MetadataCache.Entry> entries) {
        firstError = 0;
        if (entries.isEmpty()) {
            complete(0);
            return;
        }
        wrote = true;
        outstanding = entries.size();
        MetadataCache cache = state == REFBLOCKS ? refcounts.blocks : map.l2;
        for (MetadataCache.Entry e : new ArrayList<>(entries)) {
            cache.write(e, this::batchDone);
        }
    }

    private void batchDone(int ret) {
        if (ret < 0 && firstError == 0) {
            firstError = ret;
        }
        if (--outstanding == 0) {
            complete(firstError);
        }
    }

    @Override
    public void complete(int ret) {
        if (ret < 0) {
            if (state == REFTABLE_WRITTEN) {
                refcounts.table().writeFailed();
            } else if (state == L1_WRITTEN) {
                map.l1.writeFailed();
            }
            LOG.warn("qcow2 image '{}': metadata write-back failed in step {}: errno {}", image, state, -ret);
            finish(ret);
            return;
        }
        BlockNode f = file.get();
        switch (state) {
            case REFBLOCKS:
                if (refcounts.table().isDirty()) {
                    state = REFTABLE_FLUSHED;
                    f.flush(this);
                    return;
                }
                state = REFTABLE_WRITTEN;
                complete(0);
                return;
            case REFTABLE_FLUSHED:
                state = REFTABLE_WRITTEN;
                wrote = true;
                refcounts.table().writeDirty(f, this);
                return;
            case REFTABLE_WRITTEN:
                if (map.l2.dirtyCount() > 0 || map.l1.isDirty()) {
                    state = DATA_FLUSHED;
                    f.flush(this);
                    return;
                }
                state = L2_WRITTEN;
                complete(0);
                return;
            case DATA_FLUSHED:
                state = L2_WRITTEN;
                batch.clear();
                map.l2.collectDirty(batch);
                writeBatch(batch);
                return;
            case L2_WRITTEN:
                if (map.l1.isDirty()) {
                    state = L1_FLUSHED;
                    f.flush(this);
                    return;
                }
                state = L1_WRITTEN;
                complete(0);
                return;
            case L1_FLUSHED:
                state = L1_WRITTEN;
                wrote = true;
                map.l1.writeDirty(f, this);
                return;
            case L1_WRITTEN:
                state = FINAL_FLUSHED;
                if (wrote || guestFlush) {
                    f.flush(this);
                } else {
                    complete(0);
                }
                return;
            case FINAL_FLUSHED:
                state = FREES_APPLIED;
                if (!frees.isEmpty()) {
                    frees.apply(oldestInFlight.getAsLong(), this);
                } else {
                    complete(0);
                }
                return;
            default:
                finish(0);
        }
    }

    private void finish(int ret) {
        state = IDLE;
        batch.clear();
        BlockCompletion c = done;
        done = null;
        c.complete(ret);
    }
}
