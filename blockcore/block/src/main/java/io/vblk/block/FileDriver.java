package io.vblk.block;

import com.sun.jna.Memory;
import com.sun.jna.Native;

import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPool;
import io.vblk.aio.ThreadPoolJob;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;

/**
 * The {@code file} protocol driver: a host file accessed with
 * {@code preadv}/{@code pwritev} straight from the request's I/O vector, on
 * the machine's {@link ThreadPool} (QEMU's file-posix with {@code aio=threads}).
 * Flush is {@code fdatasync}; discard punches a hole; write-zeroes uses
 * {@code FALLOC_FL_ZERO_RANGE}. Reads past the end of the file return zeroes
 * and writes past it grow the file, which format drivers rely on.
 */
public final class FileDriver extends BlockDriver implements GrowableDriver {
    private static final int OP_READ = 0;
    private static final int OP_WRITE = 1;
    private static final int OP_FLUSH = 2;
    private static final int OP_DISCARD = 3;
    private static final int OP_ZEROES = 4;

    private final Path path;
    /** Swapped only by {@link #reopen}, while the node is drained (no job holds it). */
    private volatile int fd;
    private volatile boolean readOnlyFd;
    private final ThreadPool pool;
    private volatile long length;
    private final ArrayDeque<FileJob> jobs = new ArrayDeque<>();

    private FileDriver(Path path, int fd, ThreadPool pool, long length) {
        this.path = path;
        this.fd = fd;
        this.pool = pool;
        this.length = length;
    }

    /** Opens {@code path}; a missing, unreadable or directory path is a {@link BlockException} naming it. */
    static FileDriver open(Path path, boolean readOnly, ThreadPool pool) {
        if (!Files.exists(path)) {
            throw new BlockException("cannot open '" + path + "': no such file");
        }
        if (Files.isDirectory(path)) {
            throw new BlockException("cannot open '" + path + "': is a directory");
        }
        int fd = FileIo.open(path.toString(), (readOnly ? FileIo.O_RDONLY : FileIo.O_RDWR) | FileIo.O_CLOEXEC);
        if (fd < 0) {
            int err = Native.getLastError();
            throw new BlockException("cannot open '" + path + "'" + (readOnly ? " read-only" : " read-write") + ": "
                    + Errno.name(err));
        }
        long len = FileIo.lseek(fd, 0, FileIo.SEEK_END);
        if (len < 0) {
            int err = Native.getLastError();
            FileIo.close(fd);
            throw new BlockException("cannot size '" + path + "': " + Errno.name(err));
        }
        FileDriver d = new FileDriver(path, fd, pool, len);
        d.readOnlyFd = readOnly;
        return d;
    }

    public Path path() {
        return path;
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

    @Override
    public void preadv(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        submit(OP_READ, offset, bytes, qiov, 0, cb);
    }

    @Override
    public void pwritev(long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        submit(OP_WRITE, offset, bytes, qiov, flags, cb);
    }

    @Override
    public void flush(BlockCompletion cb) {
        submit(OP_FLUSH, 0, 0, null, 0, cb);
    }

    @Override
    public void pdiscard(long offset, long bytes, BlockCompletion cb) {
        submit(OP_DISCARD, offset, bytes, null, 0, cb);
    }

    @Override
    public void pwriteZeroes(long offset, long bytes, int flags, BlockCompletion cb) {
        submit(OP_ZEROES, offset, bytes, null, flags, cb);
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

    /** Sets the file's length (format drivers preallocating or shrinking); control path, blocking briefly. */
    public int truncate(long newLength) {
        if (FileIo.ftruncate(fd, newLength) < 0) {
            return -Native.getLastError();
        }
        length = newLength;
        return 0;
    }

    private void submit(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        FileJob j = jobs.pollFirst();
        if (j == null) {
            j = new FileJob();
        }
        j.op = op;
        j.offset = offset;
        j.bytes = bytes;
        j.flags = flags;
        j.cb = cb;
        j.load(qiov);
        pool.submit(node().context(), j);
    }

    @Override
    public void close() {
        FileIo.close(fd);
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
     * descriptor: QEMU's {@code raw_reopen_prepare}/{@code commit}. The node
     * is drained by the caller, so no request uses the old descriptor.
     * Returns 0 or -errno (the old descriptor stays in use on failure).
     */
    @Override
    public int reopen(boolean readOnly) {
        if (readOnly == readOnlyFd) {
            return 0;
        }
        int nfd = FileIo.open(path.toString(), (readOnly ? FileIo.O_RDONLY : FileIo.O_RDWR) | FileIo.O_CLOEXEC);
        if (nfd < 0) {
            return -Native.getLastError();
        }
        int old = fd;
        fd = nfd;
        readOnlyFd = readOnly;
        FileIo.close(old);
        return 0;
    }

    @Override
    public String describe() {
        return "file '" + path + "' length=" + length;
    }

    /** One request on a worker: pooled, with its own native iovec array. */
    private final class FileJob extends ThreadPoolJob {
        int op;
        long offset;
        long bytes;
        int flags;
        BlockCompletion cb;
        private Memory iov = new Memory(16L * 8);
        private int iovcnt;
        private long[] base = new long[8];
        private long[] len = new long[8];

        void load(IoVec v) {
            iovcnt = 0;
            if (v == null) {
                return;
            }
            long left = bytes;
            int n = v.count();
            if (base.length < n) {
                base = new long[n];
                len = new long[n];
                iov = new Memory(16L * n);
            }
            for (int i = 0; i < n && left > 0; i++) {
                long l = Math.min(left, v.length(i));
                base[iovcnt] = v.address(i);
                len[iovcnt] = l;
                iovcnt++;
                left -= l;
            }
        }

        @Override
        protected int work() {
            switch (op) {
                case OP_READ:
                    return rw(false);
                case OP_WRITE: {
                    int r = rw(true);
                    if (r == 0 && (flags & BlockFlags.FUA) != 0 && FileIo.fdatasync(fd) < 0) {
                        return -Native.getLastError(); // forced unit access: stable before completion
                    }
                    return r;
                }
                case OP_FLUSH:
                    return FileIo.fdatasync(fd) < 0 ? -Native.getLastError() : 0;
                case OP_DISCARD:
                    return fallocate(FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE);
                default:
                    return (flags & BlockFlags.MAY_UNMAP) != 0 && offset + bytes <= length
                            ? fallocate(FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE)
                            : fallocate(FileIo.FALLOC_FL_ZERO_RANGE);
            }
        }

        private int fallocate(int mode) {
            if (FileIo.fallocate(fd, mode, offset, bytes) < 0) {
                int err = Native.getLastError();
                return err == FileIo.EOPNOTSUPP ? -Errno.ENOTSUP : -err;
            }
            return 0;
        }

        /** Full transfer, resuming after short reads/writes; a read that hits EOF zero-fills the rest. */
        private int rw(boolean write) {
            int first = 0;
            long pos = offset;
            long skip = 0; // bytes already done inside iov[first]
            while (first < iovcnt) {
                int k = 0;
                for (int i = first; i < iovcnt; i++, k++) {
                    long off = i == first ? skip : 0;
                    iov.setLong(16L * k, base[i] + off);
                    iov.setLong(16L * k + 8, len[i] - off);
                }
                long r = write ? FileIo.pwritev(fd, iov, k, pos) : FileIo.preadv(fd, iov, k, pos);
                if (r < 0) {
                    int err = Native.getLastError();
                    if (err == Errno.EINTR) {
                        continue;
                    }
                    return -err;
                }
                if (r == 0) {
                    if (write) {
                        return -Errno.EIO;
                    }
                    zeroRest(first, skip);
                    return 0;
                }
                pos += r;
                while (r > 0) {
                    long avail = len[first] - skip;
                    if (r >= avail) {
                        r -= avail;
                        first++;
                        skip = 0;
                    } else {
                        skip += r;
                        r = 0;
                    }
                }
            }
            return 0;
        }

        private void zeroRest(int first, long skip) {
            for (int i = first; i < iovcnt; i++) {
                long off = i == first ? skip : 0;
                io.netty.util.internal.PlatformDependent.setMemory(base[i] + off, len[i] - off, (byte) 0);
            }
        }

        @Override
        protected void complete(int ret) {
            if (ret == 0 && (op == OP_WRITE || op == OP_ZEROES) && offset + bytes > length) {
                length = offset + bytes;
            }
            BlockCompletion c = cb;
            cb = null;
            jobs.addFirst(this);
            c.complete(ret);
        }
    }
}
