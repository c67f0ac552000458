package io.vblk.block;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/** Positional file I/O syscalls for the {@code file} driver, through JNA direct mapping. */
final class FileIo {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private FileIo() {
    }

    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;
    static final int SEEK_END = 2;
    static final int SEEK_DATA = 3;
    static final int SEEK_HOLE = 4;
    static final int ENXIO = 6;
    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int FALLOC_FL_ZERO_RANGE = 0x10;
    static final int EOPNOTSUPP = 95;

    static native int open(String path, int flags);

    static native int close(int fd);

    static native long preadv(int fd, Pointer iov, int iovcnt, long offset);

    static native long pwritev(int fd, Pointer iov, int iovcnt, long offset);

    static native int fdatasync(int fd);

    static native int fallocate(int fd, int mode, long offset, long len);

    static native int ftruncate(int fd, long length);

    static native long lseek(int fd, long offset, int whence);
}
