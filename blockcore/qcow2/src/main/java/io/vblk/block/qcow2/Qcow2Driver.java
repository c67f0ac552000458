package io.vblk.block.qcow2;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;
import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPool;
import io.vblk.block.BlockCompletion;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockFlags;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;
import io.vblk.block.IoVec;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The qcow2 format driver of one node: QEMU's {@code bdrv_qcow2} with its
 * {@code BDRVQcow2State} (block/qcow2.c). It owns the image's metadata
 * (header, {@link ClusterMap}, {@link Refcounts}), the {@link MetadataLock},
 * the in-flight {@link AllocationRun}s and the pools of request state
 * machines, and turns every block-layer call into one pooled request.
 * Opening and the re-read on activation are {@link Qcow2Open}
 * ({@code qcow2_do_open}), header rewrites {@link Qcow2HeaderUpdate}
 * ({@code qcow2_update_header}), block status {@link Qcow2BlockStatus}
 * ({@code qcow2_co_block_status}); this class keeps the state and the
 * read/write/flush dispatch.
 *
 * <h2>Concurrency</h2>
 * Everything runs in the node's home context, so nothing here is locked
 * against other threads; what needs ordering is the interleaving of requests
 * that wait for I/O. Reads and in-place overwrites look the mapping up in the
 * resident L2 table without any lock and go straight to the file, so they run
 * in parallel and allocate nothing. Anything that loads or changes metadata
 * takes the {@link MetadataLock} (QEMU's {@code s->lock}) for its metadata
 * steps only, never across guest data I/O. Two requests never change the
 * mapping of the same guest cluster concurrently: an allocation registers an
 * {@link AllocationRun} and later writers of those clusters wait for it.
 *
 * <h2>Crash consistency</h2>
 * <ul>
 * <li>Guest data reaches a new cluster before the L2 entry pointing to it
 *     changes (even in memory), and the file is flushed before any changed L2
 *     table is written ({@link Checkpoint}).</li>
 * <li>A refcount increase is written (and flushed) before an L2 table or the
 *     refcount table that relies on it; a new L2 table before the L1 entry
 *     pointing to it; refcount blocks before the refcount-table entries
 *     pointing to them.</li>
 * <li>A refcount decrease is applied only after the L2 change that dropped
 *     the reference is durable ({@link DeferredFrees}).</li>
 * <li>Growing the refcount table writes and flushes the new area before the
 *     header switches to it ({@link RefcountTableGrowth}).</li>
 * <li>Metadata is written back on guest flush, FUA writes, cache eviction,
 *     {@link #inactivate()} and {@link #close()}.</li>
 * </ul>
 * A crash therefore loses at most writes not yet flushed and may leak
 * clusters (which {@code qemu-img check -r leaks} repairs); it never leaves an
 * L2 entry pointing at a cluster whose data or refcount is missing.
 *
 * <h2>Unsupported</h2>
 * Writing compressed clusters, encryption, external data files, extended L2
 * entries, zstd, internal snapshots (read-only), the dirty and corrupt bits
 * (read-only); lazy refcounts are never used. Opening refuses them with a
 * {@link BlockException} naming the feature.
 */
public final class Qcow2Driver extends BlockDriver {
    private static final Logger LOG = LoggerFactory.getLogger(Qcow2Driver.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    private final Qcow2Header header;
    private final Layout g;
    private final String image;
    private final Path path;
    private final ThreadPool threadPool;
    private final MetadataLock lock;
    private final ClusterMap map;
    private final Refcounts refcounts;
    private final DeferredFrees frees;
    private final RefcountTableGrowth growth;
    private final Checkpoint checkpoint;
    private final BufferPool clusterBuffers;
    private final BufferPool compressedBuffers;
    private final String writeRefusal;
    private final Qcow2HeaderUpdate headerUpdate;
    private final Qcow2BlockStatus status;
    private boolean refusalLogged;
    private final ArrayDeque<ReadRequest> reads = new ArrayDeque<>();
    private final ArrayDeque<WriteRequest> writes = new ArrayDeque<>();
    private final ArrayDeque<FlushRequest> flushes = new ArrayDeque<>();
    private final ArrayDeque<Decompressor> decompressors = new ArrayDeque<>();
    private final List<Decompressor> allDecompressors = new ArrayList<>();
    private final List<AllocationRun> runs = new ArrayList<>();
    private long nextSeq;
    private Qcow2Request oldest;
    private Qcow2Request newest;
    private int inFlight;

    Qcow2Driver(Qcow2Header header, String image, Path path, ThreadPool threadPool, NativeTable l1,
            NativeTable reftable, int l2Tables, int refblocks) {
        this.header = header;
        this.image = image;
        this.path = path;
        this.threadPool = threadPool;
        this.g = new Layout(header.clusterBits, header.size, header.refcountOrder);
        this.lock = new MetadataLock(this::context);
        MetadataCache l2 = new MetadataCache("L2", g.clusterSize, l2Tables, header.l1Size, this::file);
        MetadataCache rb = new MetadataCache("refcount", g.clusterSize, refblocks, reftable.entries, this::file);
        this.refcounts = new Refcounts(g, image, reftable, rb);
        this.frees = new DeferredFrees(g, refcounts, this::file);
        this.growth = new RefcountTableGrowth(g, image, header, refcounts, frees, this::file, this::freeTag);
        refcounts.setGrowth(growth);
        this.map = new ClusterMap(g, image, l1, l2, refcounts);
        this.checkpoint = new Checkpoint(image, this::file, refcounts, frees, map, this::oldestInFlight);
        l2.setCleaner((victim, done) -> checkpoint.run(false, done));
        // idle bounce buffers kept: up to 32, at most about 16 MiB of them
        this.clusterBuffers = new BufferPool(g.clusterSize, Math.max(2, Math.min(32, (16 << 20) >> g.clusterBits)));
        this.compressedBuffers = new BufferPool(2 * g.clusterSize + 512, Math.max(1, Math.min(8, (8 << 20) >> g.clusterBits)));
        this.writeRefusal = header.unsupportedForWriting();
        this.headerUpdate = new Qcow2HeaderUpdate(this, header, image);
        this.status = new Qcow2BlockStatus(this);
    }

    // ------------------------------------------------------------------ accessors for the package

    Layout layout() {
        return g;
    }

    String image() {
        return image;
    }

    Path path() {
        return path;
    }

    /** Why the image cannot be written (an unsupported feature), or null. */
    String writeRefusal() {
        return writeRefusal;
    }

    Qcow2Header header() {
        return header;
    }

    int version() {
        return header.version;
    }

    ClusterMap map() {
        return map;
    }

    Refcounts refcounts() {
        return refcounts;
    }

    DeferredFrees frees() {
        return frees;
    }

    Checkpoint checkpoint() {
        return checkpoint;
    }

    RefcountTableGrowth growth() {
        return growth;
    }

    MetadataLock lock() {
        return lock;
    }

    /** The format node this driver serves ({@link #node()}, for the package's collaborators). */
    BlockNode formatNode() {
        return node();
    }

    BlockNode file() {
        return node().child(ChildRole.FILE);
    }

    BlockNode backing() {
        return node().child(ChildRole.BACKING);
    }

    AioContext context() {
        return node().context();
    }

    ThreadPool threadPool() {
        return threadPool;
    }

    BufferPool clusterBuffers() {
        return clusterBuffers;
    }

    BufferPool compressedBuffers() {
        return compressedBuffers;
    }

    Decompressor takeDecompressor() {
        Decompressor j = decompressors.pollFirst();
        if (j == null) {
            j = new Decompressor();
            allDecompressors.add(j);
        }
        return j;
    }

    void giveDecompressor(Decompressor j) {
        decompressors.addFirst(j);
    }

    /** Whether a zero or discard of an unallocated cluster must set the zero flag (to hide a backing file). */
    boolean zeroNeedsL2() {
        return header.version >= 3 && backing() != null;
    }

    // ------------------------------------------------------------------ allocations in flight

    /** The in-flight run overlapping [first, first+n) that starts first, or null. */
    AllocationRun firstOverlap(long first, int n) {
        AllocationRun best = null;
        for (AllocationRun r : runs) {
            if (r.overlaps(first, n) && (best == null || r.first < best.first)) {
                best = r;
            }
        }
        return best;
    }

    void addRun(AllocationRun r) {
        runs.add(r);
    }

    void removeRun(AllocationRun r) {
        runs.remove(r);
    }

    int runsInFlight() {
        return runs.size();
    }

    /** Defers freeing the host cluster(s) an L2 entry no longer points to. */
    void freeOld(long e, long tag, boolean punch) {
        switch (L2Entry.kind(e)) {
            case L2Entry.NORMAL:
            case L2Entry.ZERO_ALLOC:
                frees.defer(L2Entry.hostOffset(e), g.clusterSize, tag, punch);
                break;
            case L2Entry.COMPRESSED_KIND:
                frees.defer(g.compressedRangeStart(e), g.compressedRangeBytes(e), tag, false);
                break;
            default:
                break;
        }
    }

    // ------------------------------------------------------------------ requests in flight

    void register(Qcow2Request r) {
        r.seq = nextSeq++;
        r.prevInFlight = newest;
        r.nextInFlight = null;
        if (newest != null) {
            newest.nextInFlight = r;
        } else {
            oldest = r;
        }
        newest = r;
        inFlight++;
    }

    void unregister(Qcow2Request r, int ret) {
        if (r.prevInFlight != null) {
            r.prevInFlight.nextInFlight = r.nextInFlight;
        } else {
            oldest = r.nextInFlight;
        }
        if (r.nextInFlight != null) {
            r.nextInFlight.prevInFlight = r.prevInFlight;
        } else {
            newest = r.prevInFlight;
        }
        r.prevInFlight = null;
        r.nextInFlight = null;
        inFlight--;
        if (TRACE) {
            LOG.trace("qcow2_co_{}_done node={} seq={} ret={}", r.traceName(), node().name(), r.seq, ret);
        }
    }

    /** The tag of a free recorded now: requests numbered below it may still use the cluster. */
    long freeTag() {
        return nextSeq;
    }

    /** The lowest sequence number still in flight (or the next one when idle). */
    long oldestInFlight() {
        return oldest != null ? oldest.seq : nextSeq;
    }

    void recycle(ReadRequest r) {
        reads.addFirst(r);
    }

    void recycle(WriteRequest r) {
        writes.addFirst(r);
    }

    void recycle(FlushRequest r) {
        flushes.addFirst(r);
    }

    // ------------------------------------------------------------------ BlockDriver

    @Override
    public String formatName() {
        return "qcow2";
    }

    @Override
    public long length() {
        return g.size;
    }

    @Override
    public boolean supportsBacking() {
        return true;
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        if (TRACE) {
            LOG.trace("qcow2_co_preadv node={} offset={} bytes={}", node().name(), offset, bytes);
        }
        ReadRequest r = reads.pollFirst();
        if (r == null) {
            r = new ReadRequest(this);
        }
        r.start(offset, bytes, qiov, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        startWrite(WriteRequest.OP_WRITE, offset, bytes, qiov, flags, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        if (header.version < 3 && backing() != null) {
            cb.complete(-Errno.ENOTSUP); // no zero flag in version 2: the node writes a zero buffer instead
            return;
        }
        startWrite(WriteRequest.OP_ZERO, offset, bytes, null, flags, cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        startWrite(WriteRequest.OP_DISCARD, offset, bytes, null, 0, cb);
    }

    private void startWrite(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        if (writeRefusal != null) {
            if (!refusalLogged) {
                refusalLogged = true;
                LOG.error("qcow2 image '{}' cannot be written: {}", image, writeRefusal);
            }
            cb.complete(-Errno.EROFS);
            return;
        }
        if (TRACE) {
            LOG.trace("qcow2_co_{} node={} offset={} bytes={} flags={}", op == WriteRequest.OP_WRITE ? "pwritev"
                    : op == WriteRequest.OP_ZERO ? "pwrite_zeroes" : "pdiscard", node().name(), offset, bytes, flags);
        }
        WriteRequest r = writes.pollFirst();
        if (r == null) {
            r = new WriteRequest(this);
        }
        r.start(op, offset, bytes, qiov, flags & (BlockFlags.FUA | BlockFlags.MAY_UNMAP), cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        if (TRACE) {
            LOG.trace("qcow2_co_flush node={}", node().name());
        }
        if (node().isReadOnly() && !checkpoint.needed()) {
            cb.complete(0);
            return;
        }
        FlushRequest r = flushes.pollFirst();
        if (r == null) {
            r = new FlushRequest(this);
        }
        r.start(cb);
    }

    /** QEMU's {@code qcow2_co_block_status}: see {@link Qcow2BlockStatus}. */
    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        return status.blockStatus(offset, bytes);
    }

    // ------------------------------------------------------------------ header updates

    boolean autoclearPending() {
        return headerUpdate.autoclearPending();
    }

    /** Clears the autoclear feature bits before the first write ({@link Qcow2HeaderUpdate#clearAutoclear}). */
    void clearAutoclear(BlockCompletion cb) {
        headerUpdate.clearAutoclear(cb);
    }

    // ------------------------------------------------------------------ backing file name

    /** The image file's path, or null when the image is not on a host file. */
    @Override
    public Path imagePath() {
        return path;
    }

    /** The backing file name stored in the header, or null. */
    public String backingFileName() {
        return header.backingFile;
    }

    /** The backing format stored in the header, or null. */
    public String backingFormatName() {
        return header.backingFormat;
    }

    /**
     * Rewrites the backing file name and format in the image header: QEMU's
     * {@code qcow2_change_backing_file} ({@link Qcow2HeaderUpdate#changeBackingFile}).
     * The node is drained and writable; runs in its home context (or under its
     * lock), waiting synchronously. Returns 0 or -errno.
     */
    @Override
    public int changeBackingFile(String backingFile, String backingFormat) {
        return headerUpdate.changeBackingFile(backingFile, backingFormat);
    }

    // ------------------------------------------------------------------ lifecycle

    /**
     * Writes every dirty table and applies pending frees, waiting in the home
     * context; repeats while a round left work (applied frees dirty refcount
     * blocks). Returns 0 or -errno.
     */
    private int writeBackSync() {
        int ret = 0;
        for (int round = 0; round < 4 && checkpoint.needed(); round++) {
            int[] result = {1};
            lock.acquire(() -> checkpoint.run(true, r -> {
                lock.release();
                result[0] = r;
            }));
            AioWait.pollWhile(context(), () -> result[0] == 1);
            ret = result[0];
            if (ret < 0) {
                break;
            }
        }
        return ret;
    }

    @Override
    public int inactivate() {
        int ret = writeBackSync();
        if (ret < 0) {
            LOG.error("qcow2 image '{}': writing metadata back before inactivation failed: errno {}", image, -ret);
        }
        return ret;
    }

    /** Re-reads the L1 and refcount tables another process may have changed, and drops the caches. */
    @Override
    public int activate() {
        return Qcow2Open.reload(this);
    }

    @Override
    public void close() {
        try {
            if (!node().isReadOnly() && checkpoint.needed()) {
                int ret = writeBackSync();
                if (ret < 0) {
                    LOG.error("qcow2 image '{}': writing metadata back on close failed: errno {}", image, -ret);
                }
            }
        } catch (RuntimeException e) {
            LOG.error("qcow2 image '{}': metadata not written back on close", image, e);
        }
        for (Decompressor d : allDecompressors) {
            d.end();
        }
    }

    @Override
    public String describe() {
        return "qcow2 v" + header.version + " '" + image + "' " + g + " in_flight=" + inFlight + " allocations="
                + runs.size() + " lock=" + (lock.isHeld() ? "held" : "free") + "/" + lock.waiters() + " waiting; "
                + map.l2.describe() + "; " + refcounts.describe() + " deferred_frees=" + frees.size();
    }
}
