package io.vblk.vhost;

import static io.vblk.vhost.VhostUserProtocol.MEMORY_HEADER_SIZE;
import static io.vblk.vhost.VhostUserProtocol.REGION_SIZE;

import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.RamRegion;

import java.util.ArrayList;
import java.util.List;

/**
 * A vhost-user back-end's view of guest RAM: the regions the front-end
 * passed (SET_MEM_TABLE, ADD_MEM_REG), each a shared mapping of its memfd
 * with the guest-physical address, size and the front-end's own virtual
 * address of the region. libvhost-user's {@code VuDevRegion} array with
 * {@code vu_gpa_to_va} and {@code qva_to_va}.
 *
 * <p>Ring addresses arrive as front-end virtual addresses
 * (SET_VRING_ADDR) and are turned into guest-physical ones with
 * {@link #uaddrToGpa}; descriptor addresses are guest-physical and go
 * through the {@link GuestMemory} built by {@link #guestMemory()}.
 * Not thread-safe: the back-end's main loop owns it.
 */
final class MemoryTable implements AutoCloseable {
    /** One region as the front-end described it, and our mapping of it. */
    record Region(long gpa, long size, long uaddr, long mmapOffset, RamRegion ram) {
        boolean sameAs(long g, long s) {
            return gpa == g && size == s;
        }

        @Override
        public String toString() {
            return String.format("[gpa 0x%x, size 0x%x, uaddr 0x%x, offset 0x%x]", gpa, size, uaddr, mmapOffset);
        }
    }

    private final List<Region> regions = new ArrayList<>();

    /**
     * Maps {@code fd} shared and describes the region; the descriptor is closed
     * either way (the mapping keeps the memory). Throws a message for a region
     * that cannot be mapped.
     */
    static Region map(long gpa, long size, long uaddr, long mmapOffset, int fd) {
        try {
            String what = String.format("memory region [gpa 0x%x, size 0x%x, uaddr 0x%x, offset 0x%x]", gpa, size,
                    uaddr, mmapOffset);
            checkRange(what, gpa, size, uaddr, mmapOffset);
            PeerFd.requireMappable(fd, mmapOffset, size, what);
            // every check RamRegion's constructor makes was made above: nothing throws between mmap and ownership
            RamRegion ram = RamRegion.mapShared(gpa, size, fd, mmapOffset);
            return new Region(gpa, size, uaddr, mmapOffset, ram);
        } catch (Refusal e) {
            throw e;
        } catch (RuntimeException e) {
            throw new VhostUserException(String.format("cannot map memory region [gpa 0x%x, size 0x%x] of fd %d: "
                    + "%s", gpa, size, fd, e.getMessage()));
        } finally {
            SocketCalls.close(fd);
        }
    }

    /**
     * Refuses a region whose numbers cannot describe memory: zero or negative
     * (2^63 and up) size, a guest-physical or front-end range that wraps past
     * 2^64, an offset that is not page-aligned or overflows with the size.
     */
    static void checkRange(String what, long gpa, long size, long uaddr, long mmapOffset) {
        if (size <= 0) {
            throw new Refusal(what + ": size must be positive and below 2^63");
        }
        if (Long.compareUnsigned(gpa + size - 1, gpa) < 0) {
            throw new Refusal(what + ": guest-physical range wraps around 2^64");
        }
        if (Long.compareUnsigned(uaddr + size - 1, uaddr) < 0) {
            throw new Refusal(what + ": front-end address range wraps around 2^64");
        }
        if ((mmapOffset & 4095) != 0) {
            throw new Refusal(what + ": mmap_offset is not page-aligned");
        }
        if (mmapOffset < 0 || mmapOffset + size < 0) {
            throw new Refusal(what + ": mmap_offset + size overflows");
        }
    }

    /**
     * The regions of a SET_MEM_TABLE payload ({@code VhostUserMemory}), each
     * mapped from its descriptor; the payload size and descriptor count were
     * checked against the region count before. All or nothing: if one region
     * cannot be mapped or two overlap, none stays mapped.
     */
    static List<Region> mapTable(VhostUserMsg m) {
        int n = m.u32(0);
        List<Region> fresh = new ArrayList<>();
        try {
            for (int i = 0; i < n; i++) {
                int o = MEMORY_HEADER_SIZE + REGION_SIZE * i;
                fresh.add(map(m.u64(o), m.u64(o + 8), m.u64(o + 16), m.u64(o + 24), m.takeFd(i)));
            }
            MemoryTable check = new MemoryTable(); // refuses the first overlap; the mappings stay in 'fresh'
            for (Region r : fresh) {
                check.add(r);
            }
        } catch (RuntimeException e) {
            unmap(fresh);
            throw e;
        }
        return fresh;
    }

    /** The region of an ADD_MEM_REG payload ({@code VhostUserMemRegMsg}), mapped from {@code fd}. */
    static Region mapRegion(VhostUserMsg m, int fd) {
        return map(m.u64(8), m.u64(16), m.u64(24), m.u64(32), fd);
    }

    boolean isEmpty() {
        return regions.isEmpty();
    }

    int size() {
        return regions.size();
    }

    List<Region> regions() {
        return List.copyOf(regions);
    }

    /** The region of this table that {@code r} would overlap in guest-physical space, or null. */
    Region overlapping(Region r) {
        for (Region o : regions) {
            if (Long.compareUnsigned(r.gpa(), o.gpa() + o.size()) < 0
                    && Long.compareUnsigned(o.gpa(), r.gpa() + r.size()) < 0) {
                return o;
            }
        }
        return null;
    }

    /** Adds a region; one overlapping another is refused, its mapping left to the caller. */
    void add(Region r) {
        Region o = overlapping(r);
        if (o != null) {
            throw new Refusal("memory region " + r + " overlaps " + o);
        }
        regions.add(r);
    }

    /** Whether a region at {@code gpa} of {@code size} is in the table (what REM_MEM_REG names). */
    boolean contains(long gpa, long size) {
        for (Region r : regions) {
            if (r.sameAs(gpa, size)) {
                return true;
            }
        }
        return false;
    }

    /** Puts {@code fresh} (checked not to overlap) in place of every region; returns the old ones, still mapped. */
    List<Region> replace(List<Region> fresh) {
        List<Region> old = clear();
        for (Region r : fresh) {
            add(r);
        }
        return old;
    }

    /** Removes (and returns, still mapped) the region at {@code gpa} of {@code size}, or null. */
    Region remove(long gpa, long size) {
        for (int i = 0; i < regions.size(); i++) {
            if (regions.get(i).sameAs(gpa, size)) {
                return regions.remove(i);
            }
        }
        return null;
    }

    /** Empties the table, handing back the mappings for the caller to unmap once nothing uses them. */
    List<Region> clear() {
        List<Region> l = new ArrayList<>(regions);
        regions.clear();
        return l;
    }

    /**
     * The guest-physical address of front-end virtual address {@code uaddr}
     * if {@code [uaddr, uaddr + len)} lies in one region, else -1.
     */
    long uaddrToGpa(long uaddr, long len) {
        for (Region r : regions) {
            long off = uaddr - r.uaddr();
            if (Long.compareUnsigned(off, r.size()) < 0 && len <= r.size() - off) {
                return r.gpa() + off;
            }
        }
        return -1;
    }

    /**
     * A {@link GuestMemory} over the current regions, or null when there are
     * none. The regions stay owned by this table: the returned object must
     * not be closed (closing it would unmap them).
     */
    GuestMemory guestMemory() {
        if (regions.isEmpty()) {
            return null;
        }
        List<RamRegion> rs = new ArrayList<>();
        for (Region r : regions) {
            rs.add(r.ram());
        }
        return new GuestMemory(rs);
    }

    static void unmap(List<Region> rs) {
        for (Region r : rs) {
            r.ram().close();
        }
    }

    @Override
    public void close() {
        unmap(clear());
    }

    @Override
    public String toString() {
        return regions.toString();
    }
}
