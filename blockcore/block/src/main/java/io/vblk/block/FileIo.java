package io.vblk.block;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * Host file syscalls for the {@code file} driver (Linux x86-64 numbering and
 * layouts), through JNA direct mapping: each call is one JNI transition, no
 * proxy. Callers read errno with {@link Native#getLastError()}.
 */
final class FileIo {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private FileIo() {
    }

    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_DIRECT = 0x4000;
    static final int O_CLOEXEC = 0x80000;
    static final int SEEK_END = 2;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int ENXIO = 6;
    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int FALLOC_FL_ZERO_RANGE = 0x10;
    static final int EOPNOTSUPP = 95;
    /** pwritev2 flag: the write is stable when it returns (a FUA write). */
    static final int RWF_DSYNC = 0x2;

    // fcntl: open file description locks (OFD), as QEMU's raw-posix takes them
    static final int F_OFD_GETLK = 36;
    static final int F_OFD_SETLK = 37;
    static final short F_RDLCK = 0;
    static final short F_WRLCK = 1;
    static final short F_UNLCK = 2;
    /** {@code struct flock}: short l_type, short l_whence, off_t l_start (8), off_t l_len (16), pid_t l_pid (24). */
    static final int FLOCK_SIZE = 32;

    // statx
    static final int AT_EMPTY_PATH = 0x1000;
    static final int STATX_TYPE = 0x1;
    static final int STATX_DIOALIGN = 0x2000;
    static final int STATX_SIZE = 256;
    static final int STX_MASK = 0;
    static final int STX_MODE = 28;
    static final int STX_DIO_MEM_ALIGN = 152;
    static final int STX_DIO_OFFSET_ALIGN = 156;
    static final int S_IFMT = 0xf000;
    static final int S_IFBLK = 0x6000;

    // block device ioctls
    static final long BLKSSZGET = 0x1268;
    static final long BLKDISCARD = 0x1277;

    static native int open(String path, int flags);

    static native int close(int fd);

    static native long preadv(int fd, Pointer iov, int iovcnt, long offset);

    static native long pwritev2(int fd, Pointer iov, int iovcnt, long offset, int flags);

    static native int fdatasync(int fd);

    static native int fallocate(int fd, int mode, long offset, long len);

    static native int ftruncate(int fd, long length);

    static native long lseek(int fd, long offset, int whence);

    /** fcntl(fd, cmd, struct flock *): the lock commands only. */
    static native int fcntl(int fd, int cmd, Pointer flock);

    /** ioctl(fd, request, void *). */
    static native int ioctl(int fd, long request, Pointer arg);

    static native int statx(int dirfd, String path, int flags, int mask, Pointer buf);
}
