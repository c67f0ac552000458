package io.vblk.block;

import com.sun.jna.Native;

import io.vblk.aio.AioContext;
import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPool;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code file} protocol driver: a host file or block device, QEMU's
 * file-posix. Options are a {@link FileOptions}:
 * <ul>
 * <li>{@code aio=io_uring} (default): requests go on the io_uring of the
 *     node's AioContext ({@link LuringState}), batched per loop iteration,
 *     vectored straight on the caller's memory, the descriptor registered as
 *     a fixed file; {@code aio=threads}, or a host without io_uring (logged
 *     once), uses {@code preadv}/{@code pwritev2} on the machine's
 *     {@link ThreadPool}. Either way a request completes in the context that
 *     submitted it.</li>
 * <li>{@code cache.direct=on}: O_DIRECT; requests not aligned to the host's
 *     logical block size ({@link FileAlignment}) or memory alignment go
 *     through a bounce buffer ({@link FileRequest}); unaligned writes are
 *     read-modify-write, serialised against overlapping writes (QEMU's
 *     serialising requests), which no other request needs.</li>
 * <li>Flush is {@code fdatasync} ({@code IORING_OP_FSYNC} with DATASYNC);
 *     {@code cache.no-flush=on} completes it at once. FUA writes use
 *     {@code RWF_DSYNC}.</li>
 * <li>{@code discard=unmap} punches holes ({@code BLKDISCARD} on a block
 *     device, trimmed to its logical block size); {@code ignore} (QEMU's
 *     default) completes discards without touching the file and strips
 *     MAY_UNMAP from write-zeroes. Write-zeroes
 *     is {@code fallocate(ZERO_RANGE)} or a hole, on the ring where the kernel
 *     has {@code IORING_OP_FALLOCATE}; -ENOTSUP lets the node write zeroes.</li>
 * <li>{@code detect-zeroes=on|unmap}: an all-zero write becomes write-zeroes
 *     (unmapping with {@code unmap} and {@code discard=unmap}), QEMU's
 *     {@code bdrv_co_do_zero_pwritev} check.</li>
 * <li>{@code locking}: OFD locks ({@link FileLocks}).</li>
 * </ul>
 * Reads past the end of the file return zeroes and writes past it grow the
 * file, which format drivers rely on. Errors are returned as -errno and take
 * the backend's werror/rerror path.
 */
public final class FileDriver extends BlockDriver implements GrowableDriver {
    private static final Logger LOG = LoggerFactory.getLogger(FileDriver.class);

    private final Path path;
    private final FileOptions opts;
    /** Swapped only by {@link #reopen}, while the node is drained (no request holds it). */
    private volatile int fd;
    private volatile boolean readOnlyFd;
    private final ThreadPool pool;
    private volatile long length;
    private final FileAlignment align;
    private final boolean blockDevice;
    /** A block device's logical block size (BLKSSZGET), else 1: discards and fallocate must be aligned to it. */
    private final int blockSize;
    private final FileLocks locks;
    private final ArrayDeque<FileRequest> free = new ArrayDeque<>();

    // io_uring: the ring of the node's current context, taken on first use
    private LuringState ring;
    private int fixedSlot = -1;
    private boolean uringRefused;

    // O_DIRECT: writes in flight, for read-modify-write serialisation
    private final ArrayList<FileRequest> serial = new ArrayList<>();
    private int rmwInFlight;
    private final ArrayDeque<FileRequest> serialWaiting = new ArrayDeque<>();
    /** Requests O_DIRECT could not take from the caller's memory (statistics, racy reads). */
    private long bounced;

    private FileDriver(Path path, FileOptions opts, int fd, ThreadPool pool, long length, FileAlignment align,
            boolean blockDevice, int blockSize, FileLocks locks) {
        this.path = path;
        this.opts = opts;
        this.fd = fd;
        this.readOnlyFd = opts.readOnly();
        this.pool = pool;
        this.length = length;
        this.align = align;
        this.blockDevice = blockDevice;
        this.blockSize = blockSize;
        this.locks = locks;
    }

    /** Opens {@code path} with the default options, read-only or not. */
    static FileDriver open(Path path, boolean readOnly, ThreadPool pool) {
        return open(path, FileOptions.defaults().withReadOnly(readOnly), pool);
    }

    /**
     * Opens {@code path}; a missing, unreadable or directory path, a refused
     * O_DIRECT, or an image locked by another process is a
     * {@link BlockException} naming it.
     */
    static FileDriver open(Path path, FileOptions o, ThreadPool pool) {
        if (!Files.exists(path)) {
            throw new BlockException("cannot open '" + path + "': no such file");
        }
        if (Files.isDirectory(path)) {
            throw new BlockException("cannot open '" + path + "': is a directory");
        }
        FileLocks locks = o.locking() == FileOptions.Locking.OFF ? null
                : FileLocks.acquire(path, o.readOnly(), o.locking() == FileOptions.Locking.ON);
        int fd = -1;
        try {
            fd = openFd(path, o.readOnly(), o.direct());
            if (fd < 0) {
                int err = Native.getLastError();
                throw new BlockException("cannot open '" + path + "'" + (o.readOnly() ? " read-only" : " read-write")
                        + (o.direct() ? " with O_DIRECT (cache.direct=on)" : "") + ": " + Errno.name(err));
            }
            long len = FileIo.lseek(fd, 0, FileIo.SEEK_END);
            if (len < 0) {
                throw new BlockException("cannot size '" + path + "': " + Errno.name(Native.getLastError()));
            }
            FileAlignment a = o.direct() ? FileAlignment.probe(fd) : null;
            boolean blk = a != null ? a.blockDevice : FileAlignment.isBlockDevice(fd);
            if (a != null) {
                LOG.debug("file '{}': O_DIRECT alignment {}", path, a);
            }
            int lbs = blk ? FileAlignment.logicalBlockSize(fd) : 1;
            return new FileDriver(path, o, fd, pool, len, a, blk, lbs > 0 ? lbs : FileAlignment.DEFAULT, locks);
        } catch (RuntimeException e) {
            if (fd >= 0) {
                FileIo.close(fd);
            }
            if (locks != null) {
                locks.close();
            }
            throw e;
        }
    }

    private static int openFd(Path path, boolean readOnly, boolean direct) {
        return FileIo.open(path.toString(), (readOnly ? FileIo.O_RDONLY : FileIo.O_RDWR) | FileIo.O_CLOEXEC
                | (direct ? FileIo.O_DIRECT : 0));
    }

    public Path path() {
        return path;
    }

    public FileOptions options() {
        return opts;
    }

    /** The aio engine in use: io_uring once a ring serves the node, else threads. */
    public FileOptions.Aio aioInUse() {
        return ring != null ? FileOptions.Aio.IO_URING : FileOptions.Aio.THREADS;
    }

    /** How many reads and writes went through the O_DIRECT bounce buffer. */
    public long bouncedRequests() {
        return bounced;
    }

    /** The O_DIRECT offset alignment (1 without cache.direct). */
    public int directAlignment() {
        return align == null ? 1 : align.offset;
    }

    /** Whether the host file is a block device (discard is BLKDISCARD). */
    public boolean isBlockDevice() {
        return blockDevice;
    }

    /** A block device's logical block size (BLKSSZGET), 1 for a regular file. */
    public int logicalBlockSize() {
        return blockSize;
    }

    /** The host file: this is where a node's {@code bs->filename} comes from. */
    @Override
    public Path imagePath() {
        return path;
    }

    @Override
    public String formatName() {
        return "file";
    }

    @Override
    public long length() {
        return length;
    }

    int fd() {
        return fd;
    }

    int fixedSlot() {
        return fixedSlot;
    }

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        submit(FileRequest.OP_READ, offset, bytes, qiov, 0, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        if (opts.detectZeroes() != FileOptions.DetectZeroes.OFF && bytes > 0 && qiov.isZero(0, bytes)) {
            int zf = opts.detectZeroes() == FileOptions.DetectZeroes.UNMAP ? BlockFlags.MAY_UNMAP : 0;
            pwriteZeroes(offset, bytes, (flags & BlockFlags.FUA) | zf, cb);
            return;
        }
        submit(FileRequest.OP_WRITE, offset, bytes, qiov, flags, cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        if (opts.noFlush()) {
            cb.complete(0);
            return;
        }
        submit(FileRequest.OP_FLUSH, 0, 0, null, 0, cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        if (opts.discard() == FileOptions.Discard.IGNORE) {
            cb.complete(0); // QEMU: without BDRV_O_UNMAP a discard succeeds and does nothing
            return;
        }
        if (blockDevice) {
            // BLKDISCARD refuses (EINVAL) a range past the device's end or not aligned to its
            // logical block size; discard is advisory, so the unaligned head and tail are
            // dropped, as QEMU's bdrv_co_pdiscard drops what its pdiscard_alignment cannot take
            long end = Math.min(offset + bytes, length) & -(long) blockSize;
            long start = (offset + blockSize - 1) & -(long) blockSize;
            if (start >= end) {
                cb.complete(0);
                return;
            }
            offset = start;
            bytes = end - start;
        }
        submit(FileRequest.OP_DISCARD, offset, bytes, null, 0, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        if (opts.discard() == FileOptions.Discard.IGNORE) {
            flags &= ~BlockFlags.MAY_UNMAP;
        }
        if (blockDevice && (((offset | bytes) & (blockSize - 1)) != 0 || offset + bytes > length)) {
            // fallocate on a block device refuses (EINVAL) what is not aligned to its logical
            // block size or goes past its end: the node writes a buffer of zeroes instead
            cb.complete(-Errno.ENOTSUP);
            return;
        }
        submit(FileRequest.OP_ZEROES, offset, bytes, null, flags, cb);
    }

    /**
     * Where the file has data and where holes: QEMU's {@code find_allocation}
     * (block/file-posix.c) with {@code SEEK_DATA}/{@code SEEK_HOLE}. A hole
     * reads as zeroes; a file system without the calls reports all data.
     * Two {@code lseek}s on the calling thread, as QEMU does in its coroutine.
     */
    @Override
    public BlockStatus blockStatus(long offset, long bytes) {
        if (bytes <= 0 || offset >= length) {
            return BlockStatus.data(Math.max(0, bytes));
        }
        long d = FileIo.lseek(fd, offset, FileIo.SEEK_DATA);
        if (d < 0) {
            // ENXIO: no data at or after offset, the rest is a trailing hole
            return Native.getLastError() == FileIo.ENXIO ? BlockStatus.zero(bytes) : BlockStatus.data(bytes);
        }
        if (d > offset) {
            return BlockStatus.zero(Math.min(bytes, d - offset));
        }
        long h = FileIo.lseek(fd, offset, FileIo.SEEK_HOLE);
        if (h <= offset) {
            return BlockStatus.data(bytes);
        }
        return BlockStatus.data(Math.min(bytes, h - offset));
    }

    /**
     * Sets the file's length with ftruncate (QEMU's {@code raw_co_truncate}
     * on a regular file: grows sparse, shrinks); format drivers preallocating
     * and {@code block_resize}. Control path, blocking briefly.
     */
    @Override
    public int truncate(long newLength) {
        if (FileIo.ftruncate(fd, newLength) < 0) {
            return -Native.getLastError();
        }
        length = newLength;
        return 0;
    }

    private void submit(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        if (bytes == 0 && op != FileRequest.OP_FLUSH) {
            cb.complete(0);
            return;
        }
        FileRequest r = free.pollFirst();
        if (r == null) {
            r = new FileRequest(this);
        }
        if (opts.noFlush()) {
            flags &= ~BlockFlags.FUA;
        }
        r.load(op, offset, bytes, qiov, flags, cb);
        if (align != null && op != FileRequest.OP_FLUSH) {
            if ((op == FileRequest.OP_READ || op == FileRequest.OP_WRITE)
                    && !r.directCapable(align.offset, align.memory)) {
                r.useBounce(align.offset, align.memory);
                bounced++;
            }
            if (op != FileRequest.OP_READ && !serialise(r)) {
                return; // waits for an overlapping write
            }
        }
        dispatch(r);
    }

    private void dispatch(FileRequest r) {
        r.start(blockDevice);
        execute(r);
    }

    /** The next step of {@code r}: on the ring when it can take it, else on the thread pool. */
    private void execute(FileRequest r) {
        LuringState s = ring();
        if (s != null && !r.needsThread(s.hasFallocate())) {
            s.submit(r);
        } else {
            pool.submit(node().context(), r);
        }
    }

    /** A request's next step after a CQE (a short transfer, the write of a read-modify-write). */
    void resubmit(FileRequest r) {
        execute(r);
    }

    private LuringState ring() {
        if (ring == null && opts.aio() == FileOptions.Aio.IO_URING && !uringRefused) {
            ring = LuringState.acquire(node().context());
            if (ring == null) {
                uringRefused = true;
            } else {
                fixedSlot = ring.registerFile(fd);
            }
        }
        return ring;
    }

    /** Called once per request, in the node's context. */
    void finish(FileRequest r, int ret) {
        if (ret == 0 && (r.op == FileRequest.OP_WRITE || r.op == FileRequest.OP_ZEROES)
                && r.offset + r.bytes > length) {
            length = r.offset + r.bytes;
        }
        if (r.serialised) {
            unserialise(r);
        }
        BlockCompletion c = r.cb;
        r.cb = null;
        free.addFirst(r);
        c.complete(ret);
    }

    // ------------------------------------------------------------------ O_DIRECT write serialisation

    /**
     * Registers a write, write-zeroes or discard over its aligned extent;
     * false when it must wait: a read-modify-write overlapping another write
     * (or a write overlapping one) could otherwise write back stale bytes of
     * the blocks they share. Writes that wait keep their order.
     */
    private boolean serialise(FileRequest r) {
        r.serialStart = r.alignedStart() & -(long) align.offset;
        r.serialEnd = (r.alignedEnd() + align.offset - 1) & -(long) align.offset;
        if (!serialWaiting.isEmpty() || conflicts(r)) {
            serialWaiting.addLast(r);
            return false;
        }
        register(r);
        return true;
    }

    private boolean conflicts(FileRequest r) {
        if (!r.rmw && rmwInFlight == 0) {
            return false;
        }
        for (int i = 0; i < serial.size(); i++) {
            FileRequest w = serial.get(i);
            if ((r.rmw || w.rmw) && w.serialStart < r.serialEnd && r.serialStart < w.serialEnd) {
                return true;
            }
        }
        return false;
    }

    private void register(FileRequest r) {
        r.serialised = true;
        serial.add(r);
        if (r.rmw) {
            rmwInFlight++;
        }
    }

    private void unserialise(FileRequest r) {
        r.serialised = false;
        serial.remove(r);
        if (r.rmw) {
            rmwInFlight--;
        }
        while (!serialWaiting.isEmpty() && !conflicts(serialWaiting.peekFirst())) {
            FileRequest w = serialWaiting.pollFirst();
            register(w);
            dispatch(w);
        }
    }

    // ------------------------------------------------------------------ lifecycle

    @Override
    public void detachAioContext(AioContext ctx) {
        releaseRing();
    }

    /** The ring of the old context is given back (it drained: the node is drained); the new one is taken on first use. */
    private void releaseRing() {
        if (ring != null) {
            ring.unregisterFile(fixedSlot);
            fixedSlot = -1;
            LuringState s = ring;
            ring = null;
            s.release();
        }
    }

    @Override
    public void close() {
        releaseRing();
        FileIo.close(fd);
        if (locks != null) {
            locks.close();
        }
    }

    /** Whether the file is open read-only at the OS level. */
    public boolean isReadOnlyFd() {
        return readOnlyFd;
    }

    /** The descriptor is opened again when its mode differs. */
    @Override
    public boolean needsReopen(boolean readOnly) {
        return readOnlyFd != readOnly;
    }

    /**
     * Re-opens the file read-only or read-write and switches to the new
     * descriptor: QEMU's {@code raw_reopen_prepare}/{@code commit}, with the
     * lock bytes changed to the new mode first. The node is drained by the
     * caller, so no request uses the old descriptor. Returns 0 or -errno (the
     * old descriptor stays in use on failure; a lock conflict is -EBUSY).
     */
    @Override
    public int reopen(boolean readOnly) {
        if (readOnly == readOnlyFd) {
            return 0;
        }
        if (locks != null) {
            String why = locks.setReadOnly(readOnly);
            if (why != null) {
                LOG.error("reopen of '{}': {}", path, why);
                return -Errno.EBUSY;
            }
        }
        int nfd = openFd(path, readOnly, opts.direct());
        if (nfd < 0) {
            int err = Native.getLastError();
            if (locks != null) {
                locks.setReadOnly(readOnlyFd);
            }
            return -err;
        }
        int old = fd;
        if (ring != null) {
            ring.unregisterFile(fixedSlot);
            fixedSlot = ring.registerFile(nfd);
        }
        fd = nfd;
        readOnlyFd = readOnly;
        FileIo.close(old);
        return 0;
    }

    /** QEMU's inactivation drops the image's locks so the migration destination can take them. */
    @Override
    public int inactivate() {
        if (locks != null) {
            locks.releaseAll();
        }
        return 0;
    }

    @Override
    public int activate() {
        if (locks != null) {
            String why = locks.reacquire(readOnlyFd);
            if (why != null) {
                LOG.error("activating '{}': {}", path, why);
                return -Errno.EBUSY;
            }
        }
        return 0;
    }

    @Override
    public String describe() {
        // state only, no counters: a graph's description is compared before and after operations
        return "file '" + path + "' length=" + length + " aio=" + aioInUse().name().toLowerCase(java.util.Locale.ROOT)
                + " options=" + opts;
    }
}
