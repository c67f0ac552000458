package io.vblk.virtio.blk;

import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;

import io.vblk.virtio.GuestMemory;

/**
 * The driver side of one split virtqueue, writing guest RAM as Linux's
 * virtio_ring.c does: descriptors from a free list, chains direct or through
 * an indirect table, the avail ring published with a release fence before
 * {@code avail.idx}, kick suppression read after a full fence (used.flags, or
 * avail_event with EVENT_IDX), used entries read after an acquire fence on
 * {@code used.idx}, and interrupt re-arming through {@code used_event} (or
 * avail.flags). Raw writers let the fuzz test put arbitrary bytes anywhere in
 * the rings. Used from one guest thread at a time.
 */
final class GuestVq {
    static final int F_NEXT = 1;
    static final int F_WRITE = 2;
    static final int F_INDIRECT = 4;
    static final int AVAIL_F_NO_INTERRUPT = 1;
    static final int USED_F_NO_NOTIFY = 1;

    /** One guest buffer of a chain. */
    record Seg(long gpa, int len, boolean writable) {
    }

    /** One used ring entry. */
    record Used(int id, int len) {
    }

    final GuestMemory mem;
    final int index;
    final int size;
    final long desc;
    final long avail;
    final long used;
    final boolean eventIdx;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final int[][] chains;
    private int availIdx;
    private int added;
    private int lastUsed;

    /** Rings at {@code ringBase} (16-byte aligned) for a queue of {@code size}; zeroes them. */
    GuestVq(GuestMemory mem, int index, int size, long ringBase, boolean eventIdx) {
        this.mem = mem;
        this.index = index;
        this.size = size;
        this.desc = ringBase;
        this.avail = desc + 16L * size;
        this.used = (avail + 6 + 2L * size + 3) & ~3L;
        this.eventIdx = eventIdx;
        this.chains = new int[size][];
        mem.fill(desc, footprint(size), 0);
        for (int i = 0; i < size; i++) {
            free.add(i);
        }
    }

    /** Bytes of RAM the rings of a queue of {@code size} take from their base. */
    static long footprint(int size) {
        long availEnd = 16L * size + 6 + 2L * size;
        return ((availEnd + 3) & ~3L) + 6 + 8L * size;
    }

    // ------------------------------------------------------------------ adding chains

    void writeDesc(long table, int i, long addr, long len, int flags, int next) {
        long d = table + 16L * i;
        mem.writeU64(d, addr);
        mem.writeU32(d + 8, len);
        mem.writeU16(d + 12, flags);
        mem.writeU16(d + 14, next);
    }

    /** A direct chain of {@code segs}, made available at the next {@link #publish()}; returns its head. */
    int add(Seg... segs) {
        if (free.size() < segs.length) {
            throw new IllegalStateException("vq" + index + ": " + segs.length + " descriptors wanted, " + free.size()
                    + " free");
        }
        int[] ids = new int[segs.length];
        for (int i = 0; i < segs.length; i++) {
            ids[i] = free.poll();
        }
        for (int i = 0; i < segs.length; i++) {
            boolean more = i + 1 < segs.length;
            writeDesc(desc, ids[i], segs[i].gpa(), segs[i].len(), (segs[i].writable() ? F_WRITE : 0)
                    | (more ? F_NEXT : 0), more ? ids[i + 1] : 0);
        }
        chains[ids[0]] = ids;
        putAvail(ids[0]);
        return ids[0];
    }

    /** One ring descriptor pointing to an indirect table at {@code table} holding {@code segs}; returns its head. */
    int addIndirect(long table, Seg... segs) {
        for (int i = 0; i < segs.length; i++) {
            boolean more = i + 1 < segs.length;
            writeDesc(table, i, segs[i].gpa(), segs[i].len(), (segs[i].writable() ? F_WRITE : 0)
                    | (more ? F_NEXT : 0), more ? i + 1 : 0);
        }
        int head = free.poll();
        writeDesc(desc, head, table, 16L * segs.length, F_INDIRECT, 0);
        chains[head] = new int[] {head};
        putAvail(head);
        return head;
    }

    /** Puts {@code head} into the next avail slot, whatever it names (raw, for the fuzz test). */
    void putAvail(int head) {
        mem.writeU16(avail + 4 + 2L * ((availIdx + added) & (size - 1)), head);
        added++;
    }

    /** Makes everything added visible: release fence, then avail.idx. Returns {old, new} avail.idx. */
    int[] publish() {
        int old = availIdx;
        int now = (availIdx + added) & 0xffff;
        VarHandle.releaseFence();
        mem.writeU16(avail + 2, now);
        availIdx = now;
        added = 0;
        return new int[] {old, now};
    }

    /** Whether the device wants a kick for the entries published between {@code old} and {@code now}. */
    boolean kickNeeded(int[] oldNew) {
        VarHandle.fullFence();
        if (eventIdx) {
            int availEvent = mem.readU16(used + 4 + 8L * size);
            return needEvent(availEvent, oldNew[1], oldNew[0]);
        }
        return (mem.readU16(used) & USED_F_NO_NOTIFY) == 0;
    }

    static boolean needEvent(int event, int now, int old) {
        return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
    }

    int availIdx() {
        return availIdx;
    }

    // ------------------------------------------------------------------ used ring

    int usedIdx() {
        return mem.readU16(used + 2);
    }

    int lastUsed() {
        return lastUsed;
    }

    /** Whether used.idx moved past what was reaped; an acquire fence orders the entry reads after it. */
    boolean moreUsed() {
        boolean more = usedIdx() != lastUsed;
        VarHandle.acquireFence();
        return more;
    }

    /** The next used entry, or null; frees the descriptors of its chain if this driver made it. */
    Used pollUsed() {
        if (!moreUsed()) {
            return null;
        }
        long e = used + 4 + 8L * (lastUsed & (size - 1));
        Used u = new Used((int) mem.readU32(e), (int) mem.readU32(e + 4));
        lastUsed = (lastUsed + 1) & 0xffff;
        int[] ids = u.id() >= 0 && u.id() < size ? chains[u.id()] : null;
        if (ids != null) {
            chains[u.id()] = null;
            for (int i : ids) {
                free.add(i);
            }
        }
        return u;
    }

    /**
     * Asks for an interrupt at the next used entry (Linux's
     * virtqueue_enable_cb_prepare: used_event = last used, or avail.flags
     * cleared); the caller then re-checks {@link #moreUsed()}.
     */
    void enableInterrupts() {
        if (eventIdx) {
            mem.writeU16(avail + 4 + 2L * size, lastUsed);
        } else {
            mem.writeU16(avail, 0);
        }
        VarHandle.fullFence();
    }

    /** A polling driver (SeaBIOS): VRING_AVAIL_F_NO_INTERRUPT. */
    void disableInterrupts() {
        mem.writeU16(avail, AVAIL_F_NO_INTERRUPT);
    }

    /** Forgets every chain (after a device reset: the descriptors are the driver's again). */
    void forgetAll() {
        free.clear();
        for (int i = 0; i < size; i++) {
            chains[i] = null;
            free.add(i);
        }
    }
}
