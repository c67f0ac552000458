package io.vblk.virtio;

import com.sun.jna.Native;
import com.sun.jna.Platform;

/**
 * The libc memory-mapping calls guest RAM needs (x86-64 Linux constants),
 * bound by JNA direct mapping like {@code io.vblk.aio.LibC}: anonymous
 * mappings for private RAM, memfd for RAM another process (a vhost-user
 * backend) can map too.
 */
final class Mman {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    static final int PROT_READ = 0x1;
    static final int PROT_WRITE = 0x2;
    static final int MAP_SHARED = 0x01;
    static final int MAP_PRIVATE = 0x02;
    static final int MAP_ANONYMOUS = 0x20;
    static final int MAP_NORESERVE = 0x4000;
    static final long MAP_FAILED = -1L;
    static final int MFD_CLOEXEC = 0x1;

    private Mman() {
    }

    static native long mmap(long addr, long length, int prot, int flags, int fd, long offset);

    static native int munmap(long addr, long length);

    static native int memfd_create(String name, int flags);

    static native int ftruncate(int fd, long length);

    static native int close(int fd);

    static int errno() {
        return Native.getLastError();
    }
}
