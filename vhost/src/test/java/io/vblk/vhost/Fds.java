package io.vblk.vhost;

import com.sun.jna.Memory;
import com.sun.jna.Native;
import com.sun.jna.Platform;

import io.vblk.aio.LibC;

/** Descriptors of every kind a hostile front-end may pass: pipes, blocking eventfds, short memfds, devices. */
final class Fds {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private Fds() {
    }

    static native int pipe2(Memory fds, int flags);

    static native int open(String path, int flags);

    static native int memfd_create(String name, int flags);

    static native int ftruncate(int fd, long len);

    static native int fcntl(int fd, int cmd, int arg);

    static native long write(int fd, Memory buf, long len);

    static final int O_RDWR = 2;
    static final int O_CLOEXEC = 0x80000;
    static final int F_GETFL = 3;
    static final int O_NONBLOCK = 0x800;

    /** {read end, write end} of a blocking pipe. */
    static int[] pipe() {
        Memory m = new Memory(8);
        if (pipe2(m, O_CLOEXEC) < 0) {
            throw new IllegalStateException("pipe2 failed: " + Native.getLastError());
        }
        return new int[] {m.getInt(0), m.getInt(4)};
    }

    /** An eventfd without EFD_NONBLOCK: a read of it at zero, or a write of it when full, waits forever. */
    static int blockingEventfd() {
        return LibC.check(LibC.eventfd(0, LibC.EFD_CLOEXEC), "eventfd");
    }

    /** A blocking eventfd whose counter is at its maximum (0xfffffffffffffffe): the next write of 1 waits forever. */
    static int saturatedEventfd() {
        int fd = blockingEventfd();
        LibC.check(LibC.eventfd_write(fd, 0xffff_ffff_ffff_fffeL), "eventfd_write");
        return fd;
    }

    /** A memfd of {@code size} bytes. */
    static int memfd(long size) {
        int fd = memfd_create("hostile", 1);
        if (fd < 0 || ftruncate(fd, size) < 0) {
            throw new IllegalStateException("memfd failed: " + Native.getLastError());
        }
        return fd;
    }

    static int devZero() {
        return open("/dev/zero", O_RDWR | O_CLOEXEC);
    }

    static boolean nonBlocking(int fd) {
        return (fcntl(fd, F_GETFL, 0) & O_NONBLOCK) != 0;
    }

    static void close(int... fds) {
        for (int f : fds) {
            LibC.close(f);
        }
    }
}
