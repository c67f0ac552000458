package io.vblk.block.qcow2;

import com.sun.jna.Memory;

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
    private boolean autoclearPending;
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

    private Qcow2Driver(Qcow2Header header, String image, Path path, ThreadPool threadPool, NativeTable l1,
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
        this.autoclearPending = header.autoclear != 0;
    }

    /**
     * Opens the image on {@code file}: reads and checks the header, loads the
     * L1 and refcount tables. Main loop, synchronous reads (QEMU's
     * {@code qcow2_do_open}).
     */
    static Qcow2Driver open(BlockNode file, boolean readOnly, ThreadPool pool, int l2CacheTables, int refblockCache) {
        Path path = file.driver().imagePath();
        String image = path != null ? path.toString() : file.name();
        long flen = file.length();
        byte[] head = readSync(file, 0, (int) Math.min(flen, Qcow2Header.PROBE_BYTES), image);
        int bits = Qcow2Header.clusterBits(head, head.length, image);
        byte[] c0 = readSync(file, 0, (int) Math.min(flen, 1L << bits), image);
        Qcow2Header h = Qcow2Header.parse(c0, c0.length, flen, image);
        String unsupported = h.unsupportedForReading();
        if (unsupported != null) {
            throw Qcow2Header.unsupported(image, unsupported);
        }
        String refusal = h.unsupportedForWriting();
        if (!readOnly && refusal != null) {
            throw new BlockException("qcow2 image '" + image + "' cannot be opened read-write: " + refusal
                    + "; open it read-only");
        }
        NativeTable l1 = loadTable(file, h.l1TableOffset, h.l1Size, (long) h.l1Size * 8, image, "L1 table");
        long rtBytes = (long) h.refcountTableClusters << bits;
        NativeTable rt = loadTable(file, h.refcountTableOffset, (int) (rtBytes / 8), rtBytes, image, "refcount table");
        int cs = 1 << bits;
        int l2Tables = l2CacheTables > 0 ? l2CacheTables
                : (int) Math.max(4, Math.min(Math.max(1, h.l1Size), Qcow2Format.DEFAULT_L2_CACHE_BYTES / cs));
        int rb = Math.max(4, refblockCache > 0 ? refblockCache : l2Tables / 4); // an allocation pins up to 3
        LOG.debug("qcow2 image '{}' opened: {} (L2 cache {} tables, refcount cache {} blocks)", image, h, l2Tables, rb);
        return new Qcow2Driver(h, image, path, pool, l1, rt, l2Tables, rb);
    }

    private static byte[] readSync(BlockNode file, long offset, int len, String image) {
        byte[] out = new byte[len];
        if (len == 0) {
            return out;
        }
        Memory m = new Memory(len);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), len);
        int ret = file.preadSync(offset, len, v);
        if (ret < 0) {
            throw new BlockException("qcow2 image '" + image + "': reading the header failed: errno " + -ret);
        }
        m.read(0, out, 0, len);
        return out;
    }

    private static NativeTable loadTable(BlockNode file, long offset, int entries, long bytes, String image, String what) {
        NativeTable t = new NativeTable(offset, entries, bytes);
        if (bytes > 0) {
            int ret = file.preadSync(offset, bytes, t.wholeIoVec());
            if (ret < 0) {
                throw new BlockException("qcow2 image '" + image + "': reading the " + what + " failed: errno " + -ret);
            }
        }
        return t;
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

    /**
     * Which layer holds [offset, offset+bytes): QEMU's
     * {@code qcow2_co_block_status}. Answers from the resident L2 table; a
     * table that is not resident is loaded first, waiting with
     * {@link AioWait#pollWhile} as QEMU's synchronous {@code bdrv_block_status}
     * does, so callers run in the home context (or hold its lock in the main
     * loop) and never on a request path. The answer covers a run of clusters
     * of one kind within one L2 table (unallocated runs may span tables).
     */
    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        node().checkOwned("block status");
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
        return new BlockStatus(false, backing() == null, false, n);
    }

    /** Loads the L2 table of {@code l1} into the cache, polling the home context until done. */
    private void loadSync(int l1) {
        int[] result = {1};
        lock.acquire(() -> map.load(l1, r -> {
            lock.release();
            result[0] = r;
        }));
        AioWait.pollWhile(context(), () -> result[0] == 1);
        if (result[0] < 0) {
            throw new BlockException("qcow2 image '" + image + "': reading an L2 table failed: errno " + -result[0]);
        }
    }

    // ------------------------------------------------------------------ header updates

    boolean autoclearPending() {
        return autoclearPending;
    }

    /**
     * Clears the autoclear feature bits before the first write, as the
     * specification requires of a writer that does not maintain them (the
     * bitmaps extension becomes inconsistent): header write, then flush.
     * Under the metadata lock.
     */
    void clearAutoclear(BlockCompletion cb) {
        Memory m = new Memory(8);
        m.clear();
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), 8);
        BlockNode f = file();
        f.pwritev(Qcow2Header.OFF_AUTOCLEAR, 8, v, 0, ret -> {
            if (ret < 0) {
                cb.complete(ret);
                return;
            }
            f.flush(r -> {
                if (r == 0) {
                    LOG.info("qcow2 image '{}': cleared autoclear features 0x{} before writing", image,
                            Long.toHexString(header.autoclear));
                    header.autoclear = 0;
                    autoclearPending = false;
                }
                m.clear(); // keeps the buffer reachable until the write completed
                cb.complete(r);
            });
        });
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
     * Rewrites the backing file name and format in the image header, for a
     * stream or commit that changed the chain: QEMU's
     * {@code bdrv_change_backing_file} ({@code qcow2_change_backing_file},
     * which rewrites the header through {@code qcow2_update_header}). Cluster
     * 0 is rewritten whole — header, the backing format and feature name
     * extensions, the name — and flushed; other extensions are not kept, so
     * the autoclear bits that guarded them are cleared with it. {@code null}
     * removes the backing file. The node is drained and writable; runs in its
     * home context (or under its lock), waiting synchronously. Returns 0 or -errno.
     */
    @Override
    public int changeBackingFile(String backingFile, String backingFormat) {
        node().checkOwned("change backing file");
        if (writeRefusal != null || node().isReadOnly()) {
            return -Errno.EROFS;
        }
        String oldFile = header.backingFile;
        String oldFormat = header.backingFormat;
        long oldAutoclear = header.autoclear;
        header.backingFile = backingFile;
        header.backingFormat = backingFile == null ? null : backingFormat;
        header.autoclear = 0;
        byte[] c0;
        try {
            c0 = header.encodeCluster0();
        } catch (BlockException e) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            header.autoclear = oldAutoclear;
            LOG.error("{}", e.getMessage());
            return -Errno.EINVAL;
        }
        Memory m = new Memory(c0.length);
        m.write(0, c0, 0, c0.length);
        IoVec v = new IoVec(1);
        v.add(Memory.nativeValue(m), c0.length);
        BlockNode f = file();
        int ret = f.pwriteSync(0, c0.length, v, 0);
        if (ret == 0) {
            ret = f.flushSync();
        }
        if (ret < 0) {
            header.backingFile = oldFile;
            header.backingFormat = oldFormat;
            header.autoclear = oldAutoclear;
            LOG.error("qcow2 image '{}': rewriting the header failed: errno {}", image, -ret);
            return ret;
        }
        ByteBufferView.updateBackingLocation(header, c0);
        autoclearPending = false;
        LOG.debug("qcow2 image '{}': backing file is now {} ({})", image, backingFile, backingFormat);
        return 0;
    }

    /** Re-reads where {@link Qcow2Header#encodeCluster0} put the backing file name. */
    private static final class ByteBufferView {
        static void updateBackingLocation(Qcow2Header h, byte[] c0) {
            java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(c0);
            h.backingFileOffset = b.getLong(8);
            h.backingFileSize = b.getInt(16);
        }
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
        BlockNode f = file();
        try {
            byte[] c0 = readSync(f, 0, (int) Math.min(f.length(), g.clusterSize), image);
            Qcow2Header h = Qcow2Header.parse(c0, c0.length, f.length(), image);
            if (h.clusterBits != header.clusterBits || h.size != header.size || h.l1Size != header.l1Size
                    || h.l1TableOffset != header.l1TableOffset) {
                LOG.error("qcow2 image '{}': the image changed shape while inactive; reopen it", image);
                return -Errno.EIO;
            }
            map.l2.invalidate();
            refcounts.blocks.invalidate();
            int ret = f.preadSync(map.l1.fileOffset, map.l1.bytes(), map.l1.wholeIoVec());
            if (ret < 0) {
                return ret;
            }
            long rtBytes = (long) h.refcountTableClusters << g.clusterBits;
            NativeTable rt = loadTable(f, h.refcountTableOffset, (int) (rtBytes / 8), rtBytes, image, "refcount table");
            refcounts.replaceTable(rt);
            header.refcountTableOffset = h.refcountTableOffset;
            header.refcountTableClusters = h.refcountTableClusters;
            return 0;
        } catch (BlockException e) {
            LOG.error("{}", e.getMessage());
            return -Errno.EIO;
        }
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
