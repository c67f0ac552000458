package io.vblk.guest;

import static io.vblk.virtio.VirtioRing.AVAIL_FLAGS;
import static io.vblk.virtio.VirtioRing.AVAIL_F_NO_INTERRUPT;
import static io.vblk.virtio.VirtioRing.AVAIL_IDX;
import static io.vblk.virtio.VirtioRing.AVAIL_RING;
import static io.vblk.virtio.VirtioRing.DESC_ADDR;
import static io.vblk.virtio.VirtioRing.DESC_FLAGS;
import static io.vblk.virtio.VirtioRing.DESC_F_NEXT;
import static io.vblk.virtio.VirtioRing.DESC_F_WRITE;
import static io.vblk.virtio.VirtioRing.DESC_LEN;
import static io.vblk.virtio.VirtioRing.DESC_NEXT;
import static io.vblk.virtio.VirtioRing.DESC_SIZE;
import static io.vblk.virtio.VirtioRing.USED_ELEM_SIZE;
import static io.vblk.virtio.VirtioRing.USED_FLAGS;
import static io.vblk.virtio.VirtioRing.USED_F_NO_NOTIFY;
import static io.vblk.virtio.VirtioRing.USED_IDX;
import static io.vblk.virtio.VirtioRing.USED_RING;

import java.lang.invoke.VarHandle;

import io.vblk.firmware.Platform;
import io.vblk.virtio.VirtioRing;

/**
 * The driver side of a split virtqueue as Linux's virtio_ring.c keeps it:
 * a free list of descriptors, the avail index published with every chain
 * added (as Linux's {@code virtqueue_add_split} does, so a polling device
 * starts on the first request while the driver still queues the rest) and
 * the kick decided once per batch with
 * {@code VIRTIO_F_EVENT_IDX} (the driver writes {@code used_event}, reads
 * {@code avail_event}) or the flag-based suppression without it. One vCPU
 * owns a ring; nothing here is shared. Layout, flags and the event-index test
 * are {@link VirtioRing}'s.
 */
public final class SplitRing {

    private Platform p;
    private final int size;
    private final boolean eventIdx;
    final long desc;
    final long avail;
    final long used;
    private final int[] nextFree;
    private final int[] chainLen;
    private final int[] chainTail;
    private final int[] token;
    private int freeHead;
    private int numFree;
    private int availShadow;
    private int numAdded;
    private int lastUsed;
    private int availFlags;
    private int usedLen;

    public SplitRing(Platform p, GuestAllocator mem, int size, boolean eventIdx) {
        if (Integer.bitCount(size) != 1) {
            throw new IllegalArgumentException("queue size must be a power of two, got " + size);
        }
        this.p = p;
        this.size = size;
        this.eventIdx = eventIdx;
        this.desc = mem.alloc(VirtioRing.descTableSize(size), 4096);
        this.avail = mem.alloc(VirtioRing.availSize(size), 2);
        this.used = mem.alloc(VirtioRing.usedSize(size), 4096);
        for (long a = desc; a < desc + VirtioRing.descTableSize(size); a += 8) {
            p.ramWrite64(a, 0);
        }
        for (long a = avail; a < avail + VirtioRing.availSize(size); a += 2) {
            p.ramWrite16(a, 0);
        }
        for (long a = used; a < used + VirtioRing.usedSize(size); a += 2) {
            p.ramWrite16(a, 0);
        }
        nextFree = new int[size];
        chainLen = new int[size];
        chainTail = new int[size];
        token = new int[size];
        for (int i = 0; i < size; i++) {
            nextFree[i] = i + 1;
        }
        numFree = size;
    }

    public int size() {
        return size;
    }

    /** Accesses from now on go through {@code platform}: the vCPU that now owns this ring. */
    void bindTo(Platform platform) {
        p = platform;
    }

    public int numFree() {
        return numFree;
    }

    /** Adds a chain of buffers (readable ones first); {@code tok} comes back from {@link #getBuf()}. */
    public void add(long[] addr, int[] len, boolean[] writable, int n, int tok) {
        if (n > numFree) {
            throw new IllegalStateException("ring full: " + numFree + " free descriptors, " + n + " needed");
        }
        int head = freeHead;
        int d = head;
        int last = head;
        for (int i = 0; i < n; i++) {
            long a = desc + (long) DESC_SIZE * d;
            p.ramWrite64(a + DESC_ADDR, addr[i]);
            p.ramWrite32(a + DESC_LEN, len[i]);
            int next = nextFree[d];
            p.ramWrite16(a + DESC_FLAGS, (writable[i] ? DESC_F_WRITE : 0) | (i + 1 < n ? DESC_F_NEXT : 0));
            p.ramWrite16(a + DESC_NEXT, i + 1 < n ? next : 0);
            last = d;
            d = next;
        }
        freeHead = d;
        numFree -= n;
        chainLen[head] = n;
        chainTail[head] = last;
        token[head] = tok;
        p.ramWrite16(avail + AVAIL_RING + 2L * (availShadow & (size - 1)), head);
        availShadow = (availShadow + 1) & 0xffff;
        numAdded++;
        VarHandle.releaseFence(); // the chain and its avail entry before the index that exposes them
        p.ramWrite16(avail + AVAIL_IDX, availShadow);
    }

    /**
     * Tells whether the device wants a kick for the chains added since the
     * last call: Linux's {@code virtqueue_kick_prepare}.
     */
    public boolean kickPrepare() {
        VarHandle.fullFence(); // the published avail index before the device's avail_event is read
        int oldIdx = (availShadow - numAdded) & 0xffff;
        numAdded = 0;
        if (eventIdx) {
            int availEvent = p.ramRead16(used + VirtioRing.availEventOffset(size));
            return VirtioRing.needEvent(availEvent, availShadow, oldIdx);
        }
        return (p.ramRead16(used + USED_FLAGS) & USED_F_NO_NOTIFY) == 0;
    }

    /** The token of the next used chain, or -1; its written length is then {@link #lastLen()}. */
    public int getBuf() {
        if (lastUsed == p.ramRead16(used + USED_IDX)) {
            return -1;
        }
        VarHandle.acquireFence();
        long e = used + USED_RING + (long) USED_ELEM_SIZE * (lastUsed & (size - 1));
        int head = p.ramRead32(e);
        usedLen = p.ramRead32(e + 4);
        if (head < 0 || head >= size || chainLen[head] == 0) {
            throw new IllegalStateException("device used descriptor " + head + " that was not in flight");
        }
        int n = chainLen[head];
        chainLen[head] = 0;
        nextFree[chainTail[head]] = freeHead;
        freeHead = head;
        numFree += n;
        lastUsed = (lastUsed + 1) & 0xffff;
        if (eventIdx && (availFlags & AVAIL_F_NO_INTERRUPT) == 0) {
            p.ramWrite16(avail + VirtioRing.usedEventOffset(size), lastUsed);
            VarHandle.fullFence();
        }
        return token[head];
    }

    public int lastLen() {
        return usedLen;
    }

    /** Asks for no interrupts (polling): Linux's {@code virtqueue_disable_cb}. */
    public void disableCallbacks() {
        if ((availFlags & AVAIL_F_NO_INTERRUPT) != 0) {
            return;
        }
        availFlags |= AVAIL_F_NO_INTERRUPT;
        if (eventIdx) {
            p.ramWrite16(avail + VirtioRing.usedEventOffset(size), (lastUsed - 1) & 0xffff); // far behind: never crossed
        } else {
            p.ramWrite16(avail + AVAIL_FLAGS, availFlags);
        }
    }

    /**
     * Asks for an interrupt on the next completion; false if one is already
     * there (the caller must reap before waiting): Linux's {@code virtqueue_enable_cb}.
     */
    public boolean enableCallbacks() {
        availFlags &= ~AVAIL_F_NO_INTERRUPT;
        if (eventIdx) {
            p.ramWrite16(avail + VirtioRing.usedEventOffset(size), lastUsed);
        } else {
            p.ramWrite16(avail + AVAIL_FLAGS, availFlags);
        }
        VarHandle.fullFence();
        return lastUsed == p.ramRead16(used + USED_IDX);
    }
}
