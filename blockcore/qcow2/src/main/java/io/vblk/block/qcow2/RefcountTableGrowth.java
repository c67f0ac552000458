package io.vblk.block.qcow2;

import com.sun.jna.Memory;

import io.vblk.aio.Errno;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockNode;
import io.vblk.block.IoVec;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.Supplier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Moves the refcount table to a larger one when allocation reaches a range
 * the table cannot describe: QEMU's {@code qcow2_refcount_area} as used by
 * {@code alloc_refcount_block}.
 *
 * <p>The new table and the refcount blocks for the clusters it occupies form
 * one self-describing area right after the last range the old table covers
 * (every cluster there is free, since nothing counts it): {@code k} blocks,
 * then {@code m} table clusters, with {@code k} and {@code m} iterated until
 * the area covers itself. The switch is ordered for crash consistency:
 * <ol>
 * <li>dirty refcount blocks are written (the new table points at them);</li>
 * <li>the area is written in one request, then flushed;</li>
 * <li>the header's refcount-table offset and size are rewritten (one 12-byte
 *     write inside one sector), then flushed;</li>
 * <li>only then does memory switch to the new table; the old table's clusters
 *     become a deferred free.</li>
 * </ol>
 * A crash before step 3 leaves the old table in charge and leaks the area.
 * Runs under the metadata lock.
 */
final class RefcountTableGrowth {
    private static final Logger LOG = LoggerFactory.getLogger(RefcountTableGrowth.class);

    private final Layout g;
    private final String image;
    private final Qcow2Header header;
    private final Refcounts refcounts;
    private final DeferredFrees frees;
    private final Supplier<BlockNode> file;
    private final LongSupplier freeTag;
    private long growths;

    RefcountTableGrowth(Layout g, String image, Qcow2Header header, Refcounts refcounts, DeferredFrees frees,
            Supplier<BlockNode> file, LongSupplier freeTag) {
        this.g = g;
        this.image = image;
        this.header = header;
        this.refcounts = refcounts;
        this.frees = frees;
        this.file = file;
        this.freeTag = freeTag;
    }

    long growths() {
        return growths;
    }

    /** Grows the table so that it has an entry {@code needIndex}; completes with 0 or -errno. */
    void grow(int needIndex, BlockCompletion cb) {
        new Op(needIndex, cb).start();
    }

    private final class Op implements BlockCompletion {
        private static final int WRITE_BLOCKS = 0;
        private static final int AREA_WRITTEN = 1;
        private static final int AREA_FLUSHED = 2;
        private static final int HEADER_WRITTEN = 3;
        private static final int HEADER_FLUSHED = 4;

        final int needIndex;
        final BlockCompletion cb;
        int state;
        final List<MetadataCache.Entry> dirty = new ArrayList<>();
        int blockIndex;
        NativeTable old;
        long areaStart; // cluster index
        int k;
        int m;
        int newEntries;
        Memory area;
        Memory hdr;

        Op(int needIndex, BlockCompletion cb) {
            this.needIndex = needIndex;
            this.cb = cb;
        }

        void start() {
            old = refcounts.table();
            refcounts.blocks.collectDirty(dirty);
            state = WRITE_BLOCKS;
            complete(0);
        }

        @Override
        public void complete(int ret) {
            if (ret < 0) {
                LOG.error("qcow2 image '{}': growing the refcount table failed: errno {}", image, -ret);
                cb.complete(ret);
                return;
            }
            BlockNode f = file.get();
            switch (state) {
                case WRITE_BLOCKS:
                    if (blockIndex < dirty.size()) {
                        refcounts.blocks.write(dirty.get(blockIndex++), this);
                        return;
                    }
                    int err = layOut();
                    if (err < 0) {
                        cb.complete(err);
                        return;
                    }
                    state = AREA_WRITTEN;
                    IoVec v = new IoVec(1);
                    long bytes = (long) (k + m) << g.clusterBits;
                    v.add(Memory.nativeValue(area), (int) bytes);
                    f.pwritev(areaStart << g.clusterBits, bytes, v, 0, this);
                    return;
                case AREA_WRITTEN:
                    state = AREA_FLUSHED;
                    f.flush(this);
                    return;
                case AREA_FLUSHED: {
                    state = HEADER_WRITTEN;
                    hdr = new Memory(12);
                    ByteBuffer hb = hdr.getByteBuffer(0, 12).order(ByteOrder.BIG_ENDIAN);
                    hb.putLong(0, (areaStart + k) << g.clusterBits);
                    hb.putInt(8, m);
                    IoVec hv = new IoVec(1);
                    hv.add(Memory.nativeValue(hdr), 12);
                    f.pwritev(Qcow2Header.OFF_REFTABLE, 12, hv, 0, this);
                    return;
                }
                case HEADER_WRITTEN:
                    state = HEADER_FLUSHED;
                    f.flush(this);
                    return;
                default:
                    switchTable();
                    cb.complete(0);
            }
        }

        /** Sizes the area and fills it: k refcount blocks, then the m-cluster table. */
        private int layOut() {
            int oldEntries = old.entries;
            areaStart = (long) oldEntries << g.refblockBits;
            long want = Math.max((long) needIndex + 1, oldEntries + (oldEntries >> 1) + 1);
            k = 1;
            for (int round = 0; ; round++) {
                long mm = (want * 8 + g.clusterMask) >>> g.clusterBits;
                long last = (areaStart + k + mm - 1) >>> g.refblockBits;
                int kk = (int) (last - oldEntries + 1);
                long entriesInClusters = (mm << g.clusterBits) / 8;
                if (kk == k && entriesInClusters > last) {
                    m = (int) mm;
                    break;
                }
                k = Math.max(k, kk);
                want = Math.max(want, last + 1);
                if (round > 64) {
                    return -Errno.EIO;
                }
            }
            newEntries = (int) (((long) m << g.clusterBits) / 8);
            if (((long) m << g.clusterBits) > Layout.MAX_REFTABLE_BYTES) {
                LOG.error("qcow2 image '{}': the refcount table would exceed {} bytes", image, Layout.MAX_REFTABLE_BYTES);
                return -Errno.EFBIG;
            }
            long bytes = (long) (k + m) << g.clusterBits;
            area = new Memory(bytes);
            area.clear();
            ByteBuffer bb = area.getByteBuffer(0, bytes).order(ByteOrder.BIG_ENDIAN);
            for (long c = areaStart; c < areaStart + k + m; c++) {
                int j = (int) ((c >>> g.refblockBits) - oldEntries);
                Refcounts.set(bb, j << g.clusterBits, g.refcountOrder, (int) (c & (g.refblockEntries - 1)), 1);
            }
            int tableBase = k << g.clusterBits;
            for (int i = 0; i < oldEntries; i++) {
                bb.putLong(tableBase + (i << 3), old.get(i));
            }
            for (int j = 0; j < k; j++) {
                bb.putLong(tableBase + ((oldEntries + j) << 3), (areaStart + j) << g.clusterBits);
            }
            return 0;
        }

        private void switchTable() {
            long offset = (areaStart + k) << g.clusterBits;
            NativeTable t = new NativeTable(offset, newEntries, (long) m << g.clusterBits);
            ByteBuffer bb = area.getByteBuffer((long) k << g.clusterBits, (long) m << g.clusterBits)
                    .order(ByteOrder.BIG_ENDIAN);
            for (int i = 0; i < newEntries; i++) {
                t.load(i, bb.getLong(i << 3));
            }
            refcounts.replaceTable(t);
            header.refcountTableOffset = offset;
            header.refcountTableClusters = m;
            frees.defer(old.fileOffset, old.bytes(), freeTag.getAsLong(), false);
            growths++;
            LOG.debug("qcow2 image '{}': refcount table grown from {} to {} entries, now at 0x{} ({} new blocks)", image,
                    old.entries, newEntries, Long.toHexString(offset), k);
        }
    }
}
