package io.vblk.virtio;

import static io.vblk.virtio.VirtioRing.DESC_SIZE;

/**
 * The three rings of a split virtqueue checked and mapped to host addresses
 * once, when the driver enables the queue: QEMU's checks in
 * {@code virtio_queue_enable}/{@code virtio_queue_set_rings} and
 * {@code virtio_init_region_cache} (VRingMemoryRegionCaches). Afterwards the
 * queue reads and writes ring fields with plain loads and stores.
 */
final class VringRegions {
    /** Host addresses of the descriptor table, available ring and used ring (valid when {@link #problem} is null). */
    final long desc;
    final long avail;
    final long used;
    /** Why the configuration cannot be used (the queue breaks with it), or null. */
    final String problem;

    private VringRegions(long desc, long avail, long used, String problem) {
        this.desc = desc;
        this.avail = avail;
        this.used = used;
        this.problem = problem;
    }

    private static VringRegions bad(String problem) {
        return new VringRegions(0, 0, 0, problem);
    }

    /**
     * Checks a size of {@code n} (a power of two up to {@code maxSize}), the
     * rings' alignment (16, 2, 4) and that each ring lies in RAM.
     */
    static VringRegions map(GuestMemory mem, int n, int maxSize, long descGpa, long availGpa, long usedGpa) {
        if (n <= 0 || n > maxSize || Integer.bitCount(n) != 1) {
            return bad("queue size " + n + " is not a power of two in 1.." + maxSize);
        }
        if ((descGpa & 15) != 0 || (availGpa & 1) != 0 || (usedGpa & 3) != 0) {
            return bad(String.format("misaligned rings: desc 0x%x (needs 16), avail 0x%x (needs 2), used 0x%x (needs 4)",
                    descGpa, availGpa, usedGpa));
        }
        long d = mem.translate(descGpa, (long) DESC_SIZE * n);
        long a = mem.translate(availGpa, VirtioRing.availSize(n));
        long u = mem.translate(usedGpa, VirtioRing.usedSize(n));
        if (d < 0 || a < 0 || u < 0) {
            return bad(String.format("ring outside RAM: desc [0x%x, +0x%x)%s, avail [0x%x, +0x%x)%s, used [0x%x, +0x%x)%s",
                    descGpa, DESC_SIZE * n, d < 0 ? " BAD" : "", availGpa, 6 + 2 * n, a < 0 ? " BAD" : "",
                    usedGpa, 6 + 8 * n, u < 0 ? " BAD" : ""));
        }
        return new VringRegions(d, a, u, null);
    }
}
