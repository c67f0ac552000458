package io.vblk.virtio;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

import io.netty.buffer.ByteBuf;

/**
 * The guest-physical address space as the device sees it: a few RAM regions
 * over host memory, QEMU's {@code address_space_memory} restricted to RAM
 * (a vhost-user backend's memory table is the same thing). Immutable: a new
 * memory layout is a new {@code GuestMemory}.
 *
 * <p>Two kinds of users, two kinds of API:
 * <ul>
 * <li>Device-side code (virtqueues, devices) calls {@link #translate}, which
 *     never throws: a range outside RAM is a negative value, i.e. bad guest
 *     input the caller reports as a device error. It then reads and writes the
 *     host address through {@link HostMemory}.</li>
 * <li>Drivers, firmware and tests use the checked accessors
 *     ({@code readU16}, {@code write}, ...), which throw
 *     {@link GuestMemoryException} for addresses outside RAM. All multi-byte
 *     values are little-endian, as every virtio structure is.</li>
 * </ul>
 *
 * <p>Thread-safe. The host memory stays valid until {@link #close()}, which
 * the machine calls only after every device and iothread stopped.
 */
public final class GuestMemory implements AutoCloseable {
    /** {@link #translate} result: some of the range is not guest RAM (or crosses from one region into another). */
    public static final long ERR_NOT_RAM = -1L;
    /** {@link #translate} result: the range is malformed (negative length, or it wraps around 2^64). */
    public static final long ERR_BAD_RANGE = -2L;

    private final RamRegion[] regions;
    /**
     * The region of the last successful translation. Racy on purpose: a stale
     * value costs one more lookup; RamRegion's fields are final, so any value
     * read is a fully built region.
     */
    private RamRegion last;

    /** Takes ownership of the regions: {@link #close()} closes them. They must not overlap. */
    public GuestMemory(List<RamRegion> regions) {
        HostMemory.requireUnsafe();
        if (regions.isEmpty()) {
            throw new IllegalArgumentException("guest memory needs at least one RAM region");
        }
        RamRegion[] rs = regions.toArray(new RamRegion[0]);
        Arrays.sort(rs, (a, b) -> Long.compareUnsigned(a.gpa(), b.gpa()));
        for (int i = 1; i < rs.length; i++) {
            RamRegion prev = rs[i - 1];
            if (Long.compareUnsigned(rs[i].gpa() - prev.gpa(), prev.size()) < 0) {
                throw new IllegalArgumentException("RAM regions overlap: " + prev + " and " + rs[i]);
            }
        }
        this.regions = rs;
        this.last = rs[0];
    }

    public GuestMemory(RamRegion... regions) {
        this(Arrays.asList(regions));
    }

    /** One private, zero-filled RAM region of {@code size} bytes at {@code gpa}. */
    public static GuestMemory allocate(long gpa, long size) {
        return new GuestMemory(RamRegion.anonymous(gpa, size));
    }

    public List<RamRegion> regions() {
        return List.of(regions);
    }

    /**
     * The host address of guest-physical {@code [gpa, gpa + len)} if the whole
     * range lies inside one RAM region; otherwise {@link #ERR_NOT_RAM} or
     * {@link #ERR_BAD_RANGE} (both negative: test with {@code < 0}). A zero
     * length is valid only at an address inside a region. Never throws: this is
     * the call device code uses on guest-supplied addresses.
     */
    public long translate(long gpa, long len) {
        if (len < 0) {
            return ERR_BAD_RANGE;
        }
        RamRegion r = last;
        long off = gpa - r.gpa();
        if (Long.compareUnsigned(off, r.size()) < 0 && len <= r.size() - off) {
            return r.hostAddress() + off;
        }
        return translateSlow(gpa, len);
    }

    private long translateSlow(long gpa, long len) {
        if (len > 0 && Long.compareUnsigned(gpa + len - 1, gpa) < 0) {
            return ERR_BAD_RANGE;
        }
        for (RamRegion r : regions) {
            long off = gpa - r.gpa();
            if (Long.compareUnsigned(off, r.size()) < 0 && len <= r.size() - off) {
                last = r;
                return r.hostAddress() + off;
            }
        }
        return ERR_NOT_RAM;
    }

    /** Whether {@code [gpa, gpa + len)} is inside one RAM region. */
    public boolean isRam(long gpa, long len) {
        return translate(gpa, len) >= 0;
    }

    private long checked(long gpa, long len) {
        long hva = translate(gpa, len);
        if (hva < 0) {
            throw new GuestMemoryException(gpa, len);
        }
        return hva;
    }

    // ------------------------------------------------------------------ checked accessors (drivers, tests)

    public int readU8(long gpa) {
        return HostMemory.getU8(checked(gpa, 1));
    }

    public void writeU8(long gpa, int value) {
        HostMemory.putU8(checked(gpa, 1), value);
    }

    public int readU16(long gpa) {
        return HostMemory.getU16LE(checked(gpa, 2));
    }

    public void writeU16(long gpa, int value) {
        HostMemory.putShortLE(checked(gpa, 2), value);
    }

    public long readU32(long gpa) {
        return HostMemory.getIntLE(checked(gpa, 4)) & 0xffff_ffffL;
    }

    public void writeU32(long gpa, long value) {
        HostMemory.putIntLE(checked(gpa, 4), (int) value);
    }

    public long readU64(long gpa) {
        return HostMemory.getLongLE(checked(gpa, 8));
    }

    public void writeU64(long gpa, long value) {
        HostMemory.putLongLE(checked(gpa, 8), value);
    }

    /** Copies guest memory into {@code dst}; the range may span adjacent regions. */
    public void read(long gpa, byte[] dst, int off, int len) {
        Objects.checkFromIndexSize(off, len, dst.length);
        checkCovered(gpa, len);
        int done = 0;
        while (done < len) {
            RamRegion r = regionAt(gpa + done, len - done);
            long hva = r.hostAddress() + (gpa + done - r.gpa());
            int n = chunk(r, gpa + done, len - done);
            HostMemory.copyToArray(hva, dst, off + done, n);
            done += n;
        }
    }

    public byte[] read(long gpa, int len) {
        byte[] b = new byte[len];
        read(gpa, b, 0, len);
        return b;
    }

    /** Copies {@code src} into guest memory; the range may span adjacent regions. */
    public void write(long gpa, byte[] src, int off, int len) {
        Objects.checkFromIndexSize(off, len, src.length);
        checkCovered(gpa, len);
        int done = 0;
        while (done < len) {
            RamRegion r = regionAt(gpa + done, len - done);
            long hva = r.hostAddress() + (gpa + done - r.gpa());
            int n = chunk(r, gpa + done, len - done);
            HostMemory.copyFromArray(src, off + done, hva, n);
            done += n;
        }
    }

    public void write(long gpa, byte[] src) {
        write(gpa, src, 0, src.length);
    }

    /** Copies between guest memory and a host address (e.g. a block driver's buffer); one region only. */
    public void readToHost(long gpa, long dstHostAddress, long len) {
        HostMemory.copy(checked(gpa, len), dstHostAddress, len);
    }

    public void writeFromHost(long gpa, long srcHostAddress, long len) {
        HostMemory.copy(srcHostAddress, checked(gpa, len), len);
    }

    public void fill(long gpa, long len, int value) {
        HostMemory.fill(checked(gpa, len), len, (byte) value);
    }

    /**
     * A Netty view of {@code [gpa, gpa + len)} (one region), no copy: writes
     * through it are writes to guest RAM. Big-endian by default like every
     * ByteBuf; use the {@code *LE} accessors for virtio fields (see
     * {@link HostMemory#wrap}). Releasing it does not free guest RAM.
     */
    public ByteBuf view(long gpa, int len) {
        return HostMemory.wrap(checked(gpa, len), len);
    }

    /** Throws before anything is copied if some byte of the range is not RAM, so a failed copy changes nothing. */
    private void checkCovered(long gpa, int len) {
        if (len > 0 && Long.compareUnsigned(gpa + len - 1, gpa) < 0) {
            throw new GuestMemoryException(gpa, len);
        }
        long done = 0;
        while (done < len) {
            RamRegion r = regionAt(gpa + done, len - done);
            done += chunk(r, gpa + done, (int) (len - done));
        }
    }

    private RamRegion regionAt(long gpa, long wanted) {
        for (RamRegion r : regions) {
            if (r.contains(gpa, 1)) {
                return r;
            }
        }
        throw new GuestMemoryException(gpa, wanted);
    }

    private static int chunk(RamRegion r, long gpa, int remaining) {
        long inRegion = r.size() - (gpa - r.gpa());
        return (int) Math.min(remaining, inRegion);
    }

    /** Closes every region: only once nothing (device, iothread, driver) can touch guest RAM any more. */
    @Override
    public void close() {
        List<RuntimeException> failures = new ArrayList<>();
        for (RamRegion r : regions) {
            try {
                r.close();
            } catch (RuntimeException e) {
                failures.add(e);
            }
        }
        if (!failures.isEmpty()) {
            throw failures.get(0);
        }
    }

    @Override
    public String toString() {
        return "GuestMemory" + Arrays.toString(regions);
    }
}
