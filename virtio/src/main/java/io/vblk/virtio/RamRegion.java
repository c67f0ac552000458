package io.vblk.virtio;

import io.vblk.aio.NativeException;

/**
 * One contiguous piece of guest RAM: guest-physical addresses
 * {@code [gpa, gpa + size)} backed by host memory at {@code hostAddress}.
 * QEMU's RAM {@code MemoryRegion} as seen through a flat view, or one entry
 * of a vhost-user {@code VHOST_USER_SET_MEM_TABLE}.
 *
 * <p>Where the memory comes from is the owner's business: an anonymous
 * mapping ({@link #anonymous}), a shared memfd whose descriptor can be handed
 * to another process ({@link #memfd}), a mapping of such a descriptor
 * received from elsewhere ({@link #mapShared}), or any native allocation
 * wrapped by the public constructor. {@link #close()} closes the owner once.
 */
public final class RamRegion implements AutoCloseable {
    private final long gpa;
    private final long size;
    private final long hostAddress;
    private final int fd;
    private final AutoCloseable owner;
    private boolean closed;

    /**
     * Wraps memory someone else allocated.
     *
     * @param owner closed by {@link #close()} (unmaps or frees the memory); may be null
     */
    public RamRegion(long gpa, long size, long hostAddress, AutoCloseable owner) {
        this(gpa, size, hostAddress, -1, owner);
    }

    private RamRegion(long gpa, long size, long hostAddress, int fd, AutoCloseable owner) {
        if (size <= 0) {
            throw new IllegalArgumentException("RAM region size must be positive, got " + size);
        }
        if (Long.compareUnsigned(gpa + size - 1, gpa) < 0) {
            throw new IllegalArgumentException(String.format("RAM region [0x%x, +0x%x) wraps around 2^64", gpa, size));
        }
        if (hostAddress == 0) {
            throw new IllegalArgumentException("RAM region has no host address");
        }
        this.gpa = gpa;
        this.size = size;
        this.hostAddress = hostAddress;
        this.fd = fd;
        this.owner = owner;
    }

    /** Private zero-filled RAM (an anonymous mapping; pages are allocated on first touch). */
    public static RamRegion anonymous(long gpa, long size) {
        long addr = map(size, Mman.MAP_PRIVATE | Mman.MAP_ANONYMOUS | Mman.MAP_NORESERVE, -1, 0);
        return new RamRegion(gpa, size, addr, -1, () -> Mman.munmap(addr, size));
    }

    /**
     * Zero-filled RAM in a memfd, mapped shared: {@link #fd()} can be passed to
     * another process (vhost-user) which maps the same pages.
     */
    public static RamRegion memfd(String name, long gpa, long size) {
        int fd = Mman.memfd_create(name, Mman.MFD_CLOEXEC);
        if (fd < 0) {
            throw new NativeException("memfd_create(" + name + ")", Mman.errno());
        }
        try {
            if (Mman.ftruncate(fd, size) < 0) {
                throw new NativeException("ftruncate(memfd " + fd + ", " + size + ")", Mman.errno());
            }
            long addr = map(size, Mman.MAP_SHARED, fd, 0);
            return new RamRegion(gpa, size, addr, fd, () -> {
                Mman.munmap(addr, size);
                Mman.close(fd);
            });
        } catch (RuntimeException e) {
            Mman.close(fd);
            throw e;
        }
    }

    /**
     * Maps {@code size} bytes of a descriptor shared by someone else (the
     * vhost-user front-end's memfd) at {@code fileOffset}. The descriptor stays
     * the caller's; closing the region only unmaps.
     */
    public static RamRegion mapShared(long gpa, long size, int fd, long fileOffset) {
        long addr = map(size, Mman.MAP_SHARED, fd, fileOffset);
        return new RamRegion(gpa, size, addr, -1, () -> Mman.munmap(addr, size));
    }

    private static long map(long size, int flags, int fd, long offset) {
        if (size <= 0) {
            throw new IllegalArgumentException("RAM region size must be positive, got " + size);
        }
        long addr = Mman.mmap(0, size, Mman.PROT_READ | Mman.PROT_WRITE, flags, fd, offset);
        if (addr == Mman.MAP_FAILED) {
            throw new NativeException("mmap(" + size + " bytes, fd " + fd + ")", Mman.errno());
        }
        return addr;
    }

    public long gpa() {
        return gpa;
    }

    public long size() {
        return size;
    }

    public long hostAddress() {
        return hostAddress;
    }

    /** The shared-memory descriptor behind this region (memfd), or -1. */
    public int fd() {
        return fd;
    }

    /** Whether {@code [addr, addr + len)} lies inside this region (unsigned arithmetic; no wrap-around). */
    public boolean contains(long addr, long len) {
        long off = addr - gpa;
        return len >= 0 && Long.compareUnsigned(off, size) < 0 && len <= size - off;
    }

    /** Unmaps or frees the memory; afterwards any access through a host address from it is a crash. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (owner != null) {
            try {
                owner.close();
            } catch (Exception e) {
                throw new IllegalStateException("closing RAM region " + this + " failed", e);
            }
        }
    }

    @Override
    public String toString() {
        return String.format("RamRegion[gpa 0x%x, size 0x%x, host 0x%x%s]", gpa, size, hostAddress,
                fd >= 0 ? ", fd " + fd : "");
    }
}
