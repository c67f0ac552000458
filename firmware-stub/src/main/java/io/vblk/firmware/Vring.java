package io.vblk.firmware;

import java.lang.invoke.VarHandle;

/**
 * The driver side of one split virtqueue as SeaBIOS's virtio-ring.c keeps
 * it: page-aligned rings in low memory, one request at a time, descriptor
 * indices reused from 0, {@code VRING_AVAIL_F_NO_INTERRUPT} set, completion
 * found by polling {@code used.idx}.
 */
final class Vring {
    static final int F_NEXT = 1;
    static final int F_WRITE = 2;
    static final int AVAIL_F_NO_INTERRUPT = 1;

    private final Platform p;
    final int size;
    final long desc;
    final long avail;
    final long used;
    private int availIdx;
    private int lastUsed;

    Vring(Platform p, long base, int size) {
        this.p = p;
        this.size = size;
        this.desc = base;
        this.avail = base + 16L * size;
        long availEnd = avail + 4 + 2L * size + 2;
        this.used = (availEnd + 4095) & ~4095L;
        for (long a = desc; a < used + 4 + 8L * size + 2; a += 4) {
            p.ramWrite32(a, 0);
        }
        p.ramWrite16(avail, AVAIL_F_NO_INTERRUPT);
    }

    /** Bytes of RAM the rings occupy from the base. */
    static long footprint(int size) {
        long availEnd = 16L * size + 4 + 2L * size + 2;
        long usedStart = (availEnd + 4095) & ~4095L;
        return usedStart + 4 + 8L * size + 2;
    }

    /** Puts a chain of (address, length, device-writable) buffers on the avail ring; returns its head. */
    int add(long[] addr, int[] len, boolean[] writable, int n) {
        for (int i = 0; i < n; i++) {
            long d = desc + 16L * i;
            p.ramWrite64(d, addr[i]);
            p.ramWrite32(d + 8, len[i]);
            p.ramWrite16(d + 12, (writable[i] ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0));
            p.ramWrite16(d + 14, i + 1 < n ? i + 1 : 0);
        }
        p.ramWrite16(avail + 4 + 2L * (availIdx % size), 0);
        return 0;
    }

    /** Publishes the added chain: write barrier, then {@code avail.idx++} (SeaBIOS's vring_kick before notify). */
    void publish() {
        VarHandle.releaseFence();
        availIdx = (availIdx + 1) & 0xffff;
        p.ramWrite16(avail + 2, availIdx);
        VarHandle.fullFence();
    }

    /** Whether the device used a buffer since the last {@link #reclaim()}. */
    boolean moreUsed() {
        boolean more = p.ramRead16(used + 2) != lastUsed;
        if (more) {
            VarHandle.acquireFence();
        }
        return more;
    }

    int usedIdx() {
        return p.ramRead16(used + 2);
    }

    void reclaim() {
        lastUsed = (lastUsed + 1) & 0xffff;
    }
}
