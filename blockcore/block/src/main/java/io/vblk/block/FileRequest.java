package io.vblk.block;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Pointer;

import io.netty.util.internal.PlatformDependent;
import io.vblk.aio.Errno;
import io.vblk.aio.ThreadPoolJob;

/**
 * One request of the {@code file} driver as a small state machine of host
 * syscalls, run by either executor: on a thread-pool worker one step after
 * the other ({@link #work()}, QEMU's {@code RawPosixAIOData} with
 * {@code handle_aiocb_rw}), or on the context's io_uring one SQE per step
 * ({@link #prep}/{@link #onCqe(int)}, QEMU's {@code LuringAIOCB}). The
 * steps are the same either way, so both paths share their semantics:
 * <ul>
 * <li>a short transfer continues where it stopped; a read that reaches EOF
 *     zero-fills the rest (QEMU's {@code luring_resubmit_short_read});</li>
 * <li>with O_DIRECT, a request the host cannot take as it is (offset, length
 *     or a segment not aligned) goes through an aligned bounce buffer; an
 *     unaligned write reads the enclosing blocks first (read-modify-write);</li>
 * <li>write-zeroes falls back from {@code ZERO_RANGE} to a punched hole when
 *     it may unmap, and answers -ENOTSUP when neither works, so the node
 *     writes a zero buffer.</li>
 * </ul>
 * Pooled by its driver: no allocation per request once warm.
 */
final class FileRequest extends ThreadPoolJob implements LuringState.Op {
    static final int OP_READ = 0;
    static final int OP_WRITE = 1;
    static final int OP_FLUSH = 2;
    static final int OP_DISCARD = 3;
    static final int OP_ZEROES = 4;

    private static final int SYS_READV = 0;
    private static final int SYS_WRITEV = 1;
    private static final int SYS_FDATASYNC = 2;
    private static final int SYS_FALLOCATE = 3;
    private static final int SYS_BLKDISCARD = 4;

    /** {@link #step(long)}: another syscall to issue. */
    static final int AGAIN = 1;

    private final FileDriver driver;
    int op;
    long offset;
    long bytes;
    int flags;
    BlockCompletion cb;
    /** Set by the driver when the request is registered with its O_DIRECT write serialisation. */
    boolean serialised;
    long serialStart;
    long serialEnd;
    boolean rmw;
    FileRequest nextWaiting;

    // the caller's vector, trimmed to bytes
    private long[] base = new long[8];
    private long[] len = new long[8];
    private int count;

    // the bounce buffer (O_DIRECT requests the host cannot take directly)
    private boolean bounced;
    private Memory bounce;
    private long bounceAddr;
    private long bounceOffset;
    private long bounceBytes;
    /** Read phase of a read-modify-write. */
    private boolean rmwRead;

    // the transfer in progress: either the caller's vector or the bounce segment
    private long[] xBase;
    private long[] xLen;
    private int xCount;
    private int first;
    private long skip;
    private long pos;
    private final long[] bounceBase = new long[1];
    private final long[] bounceLen = new long[1];
    private Memory iov = new Memory(16L * 8);

    private int sys;
    private int fallocMode;
    private boolean triedOther;

    FileRequest(FileDriver driver) {
        this.driver = driver;
    }

    /** Loads the request; {@code qiov} may be null for flush, discard and write-zeroes. */
    void load(int op, long offset, long bytes, IoVec qiov, int flags, BlockCompletion cb) {
        this.op = op;
        this.offset = offset;
        this.bytes = bytes;
        this.flags = flags;
        this.cb = cb;
        this.serialised = false;
        this.rmw = false;
        this.bounced = false;
        this.nextWaiting = null;
        count = 0;
        if (qiov == null) {
            return;
        }
        int n = qiov.count();
        if (base.length < n) {
            base = new long[n];
            len = new long[n];
        }
        long left = bytes;
        for (int i = 0; i < n && left > 0; i++) {
            long l = Math.min(left, qiov.length(i));
            base[count] = qiov.address(i);
            len[count] = l;
            count++;
            left -= l;
        }
    }

    /**
     * Whether O_DIRECT can take the request straight from its buffers: offset,
     * length and every segment's length aligned to the logical block size,
     * every segment's address to the memory alignment.
     */
    boolean directCapable(int offAlign, int memAlign) {
        long om = offAlign - 1;
        if (((offset | bytes) & om) != 0) {
            return false;
        }
        long mm = memAlign - 1;
        for (int i = 0; i < count; i++) {
            if ((len[i] & om) != 0 || (base[i] & mm) != 0) {
                return false;
            }
        }
        return true;
    }

    /** Routes a read or write through the bounce buffer covering the aligned blocks around it. */
    void useBounce(int offAlign, int memAlign) {
        bounced = true;
        bounceOffset = offset & -(long) offAlign;
        long end = (offset + bytes + offAlign - 1) & -(long) offAlign;
        bounceBytes = end - bounceOffset;
        long need = bounceBytes + memAlign;
        if (bounce == null || bounce.size() < need) {
            bounce = new Memory(Math.max(need, 4096 + memAlign));
        }
        long a = Pointer.nativeValue(bounce);
        bounceAddr = (a + memAlign - 1) & -(long) memAlign;
        rmw = op == OP_WRITE && (bounceOffset != offset || bounceBytes != bytes);
    }

    long alignedStart() {
        return bounced ? bounceOffset : offset;
    }

    long alignedEnd() {
        return bounced ? bounceOffset + bounceBytes : offset + bytes;
    }

    /** Sets up the first syscall; the driver chose bounce or not, and the fallocate mode for zeroes. */
    void start(boolean blockDevice) {
        triedOther = false;
        switch (op) {
            case OP_READ:
                transfer(SYS_READV);
                break;
            case OP_WRITE:
                if (bounced && rmw) {
                    rmwRead = true;
                    transfer(SYS_READV);
                } else {
                    if (bounced) {
                        copyIntoBounce();
                    }
                    transfer(SYS_WRITEV);
                }
                break;
            case OP_FLUSH:
                sys = SYS_FDATASYNC;
                break;
            case OP_DISCARD:
                if (blockDevice) {
                    sys = SYS_BLKDISCARD;
                } else {
                    sys = SYS_FALLOCATE;
                    fallocMode = FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE;
                }
                break;
            default:
                // QEMU's handle_aiocb_write_zeroes_unmap: punch a hole first when the caller
                // allows unmapping (inside the file: a hole past EOF would not extend it)
                sys = SYS_FALLOCATE;
                fallocMode = mayPunch() ? FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE
                        : FileIo.FALLOC_FL_ZERO_RANGE;
                break;
        }
    }

    private boolean mayPunch() {
        return (flags & BlockFlags.MAY_UNMAP) != 0 && offset + bytes <= driver.length();
    }

    /** Whether the current step needs the thread pool (no io_uring opcode for it). */
    boolean needsThread(boolean uringFallocate) {
        return sys == SYS_BLKDISCARD || (sys == SYS_FALLOCATE && !uringFallocate);
    }

    private void transfer(int s) {
        sys = s;
        if (bounced) {
            bounceBase[0] = bounceAddr;
            bounceLen[0] = bounceBytes;
            xBase = bounceBase;
            xLen = bounceLen;
            xCount = 1;
            pos = bounceOffset;
        } else {
            xBase = base;
            xLen = len;
            xCount = count;
            pos = offset;
        }
        first = 0;
        skip = 0;
    }

    /** Writes the native iovec array for what is left of the transfer; its entry count. */
    private int buildIov() {
        int k = xCount - first;
        if (iov.size() < 16L * k) {
            iov = new Memory(16L * Math.max(k, 8));
        }
        long a = Pointer.nativeValue(iov);
        for (int i = first, j = 0; i < xCount; i++, j++) {
            long off = i == first ? skip : 0;
            PlatformDependent.putLong(a + 16L * j, xBase[i] + off);
            PlatformDependent.putLong(a + 16L * j + 8, xLen[i] - off);
        }
        return k;
    }

    /**
     * Consumes one syscall's result: {@link #AGAIN} when another step
     * follows, else the request's result (0 or -errno).
     */
    int step(long res) {
        if (res < 0) {
            int err = (int) -res;
            if (err == Errno.EINTR) {
                return AGAIN;
            }
            if (err == FileIo.EOPNOTSUPP) {
                err = Errno.ENOTSUP;
            }
            if (sys == SYS_FALLOCATE && op == OP_ZEROES && err == Errno.ENOTSUP && !triedOther) {
                triedOther = true;
                if (fallocMode == FileIo.FALLOC_FL_ZERO_RANGE && mayPunch()) {
                    fallocMode = FileIo.FALLOC_FL_PUNCH_HOLE | FileIo.FALLOC_FL_KEEP_SIZE;
                    return AGAIN; // no ZERO_RANGE here, but a hole reads as zeroes
                }
                if (fallocMode != FileIo.FALLOC_FL_ZERO_RANGE) {
                    fallocMode = FileIo.FALLOC_FL_ZERO_RANGE;
                    return AGAIN; // no hole punching: zero the range in place
                }
            }
            return -err;
        }
        if (sys != SYS_READV && sys != SYS_WRITEV) {
            return 0;
        }
        if (res == 0) {
            if (sys == SYS_WRITEV) {
                return -Errno.ENOSPC; // QEMU's luring: a short write means no space
            }
            zeroRest();
            return transferDone();
        }
        if (!advance(res)) {
            return AGAIN;
        }
        return transferDone();
    }

    /** Advances past {@code r} transferred bytes; true when the transfer is complete. */
    private boolean advance(long r) {
        pos += r;
        while (r > 0 && first < xCount) {
            long avail = xLen[first] - skip;
            if (r >= avail) {
                r -= avail;
                first++;
                skip = 0;
            } else {
                skip += r;
                r = 0;
            }
        }
        return first >= xCount;
    }

    private void zeroRest() {
        for (int i = first; i < xCount; i++) {
            long off = i == first ? skip : 0;
            PlatformDependent.setMemory(xBase[i] + off, xLen[i] - off, (byte) 0);
        }
        first = xCount;
    }

    private int transferDone() {
        if (op == OP_READ && bounced) {
            copyFromBounce();
            return 0;
        }
        if (rmwRead) {
            rmwRead = false;
            copyIntoBounce();
            transfer(SYS_WRITEV);
            return AGAIN;
        }
        return 0;
    }

    private void copyIntoBounce() {
        long dst = bounceAddr + (offset - bounceOffset);
        for (int i = 0; i < count; i++) {
            PlatformDependent.copyMemory(base[i], dst, len[i]);
            dst += len[i];
        }
    }

    private void copyFromBounce() {
        long src = bounceAddr + (offset - bounceOffset);
        for (int i = 0; i < count; i++) {
            PlatformDependent.copyMemory(src, base[i], len[i]);
            src += len[i];
        }
    }

    // ------------------------------------------------------------------ thread-pool executor

    /** On a worker: every step synchronously. */
    @Override
    protected int work() {
        int fd = driver.fd();
        for (;;) {
            int r = step(syscall(fd));
            if (r != AGAIN) {
                return r;
            }
        }
    }

    private long syscall(int fd) {
        long r;
        switch (sys) {
            case SYS_READV:
                r = FileIo.preadv(fd, iov, buildIov(), pos);
                break;
            case SYS_WRITEV:
                r = FileIo.pwritev2(fd, iov, buildIov(), pos, (flags & BlockFlags.FUA) != 0 ? FileIo.RWF_DSYNC : 0);
                break;
            case SYS_FDATASYNC:
                r = FileIo.fdatasync(fd);
                break;
            case SYS_FALLOCATE:
                r = FileIo.fallocate(fd, fallocMode, offset, bytes);
                break;
            default: {
                Memory range = new Memory(16); // block-device discard: a rare control operation
                range.setLong(0, offset);
                range.setLong(8, bytes);
                r = FileIo.ioctl(fd, FileIo.BLKDISCARD, range);
                break;
            }
        }
        return r < 0 ? -Native.getLastError() : r;
    }

    @Override
    protected void complete(int ret) {
        driver.finish(this, ret);
    }

    // ------------------------------------------------------------------ io_uring executor

    @Override
    public void prep(long sqe) {
        int slot = driver.fixedSlot();
        if (slot >= 0) {
            PlatformDependent.putByte(sqe + Uring.SQE_FLAGS, (byte) Uring.IOSQE_FIXED_FILE);
            PlatformDependent.putInt(sqe + Uring.SQE_FD, slot);
        } else {
            PlatformDependent.putInt(sqe + Uring.SQE_FD, driver.fd());
        }
        switch (sys) {
            case SYS_READV:
            case SYS_WRITEV: {
                int n = buildIov();
                PlatformDependent.putByte(sqe + Uring.SQE_OPCODE,
                        (byte) (sys == SYS_READV ? Uring.IORING_OP_READV : Uring.IORING_OP_WRITEV));
                PlatformDependent.putLong(sqe + Uring.SQE_OFF, pos);
                PlatformDependent.putLong(sqe + Uring.SQE_ADDR, Pointer.nativeValue(iov));
                PlatformDependent.putInt(sqe + Uring.SQE_LEN, n);
                if (sys == SYS_WRITEV && (flags & BlockFlags.FUA) != 0) {
                    PlatformDependent.putInt(sqe + Uring.SQE_RW_FLAGS, FileIo.RWF_DSYNC);
                }
                break;
            }
            case SYS_FDATASYNC:
                PlatformDependent.putByte(sqe + Uring.SQE_OPCODE, (byte) Uring.IORING_OP_FSYNC);
                PlatformDependent.putInt(sqe + Uring.SQE_RW_FLAGS, Uring.IORING_FSYNC_DATASYNC);
                break;
            default: // SYS_FALLOCATE: off = offset, addr = length, len = mode
                PlatformDependent.putByte(sqe + Uring.SQE_OPCODE, (byte) Uring.IORING_OP_FALLOCATE);
                PlatformDependent.putLong(sqe + Uring.SQE_OFF, offset);
                PlatformDependent.putLong(sqe + Uring.SQE_ADDR, bytes);
                PlatformDependent.putInt(sqe + Uring.SQE_LEN, fallocMode);
                break;
        }
    }

    /** A CQE: the next step goes back on the ring, or the request completes. */
    @Override
    public void onCqe(int res) {
        int r = step(res);
        if (r == AGAIN) {
            driver.resubmit(this);
        } else {
            driver.finish(this, r);
        }
    }

    @Override
    public String toString() {
        return "FileRequest(op=" + op + ", offset=" + offset + ", bytes=" + bytes + ")";
    }

}
