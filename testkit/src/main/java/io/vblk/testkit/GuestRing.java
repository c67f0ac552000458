package io.vblk.testkit;

import static io.vblk.virtio.VirtioRing.AVAIL_FLAGS;
import static io.vblk.virtio.VirtioRing.AVAIL_F_NO_INTERRUPT;
import static io.vblk.virtio.VirtioRing.AVAIL_IDX;
import static io.vblk.virtio.VirtioRing.AVAIL_RING;
import static io.vblk.virtio.VirtioRing.DESC_ADDR;
import static io.vblk.virtio.VirtioRing.DESC_FLAGS;
import static io.vblk.virtio.VirtioRing.DESC_F_INDIRECT;
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
import java.util.ArrayDeque;

import io.vblk.virtio.GuestMemory;
import io.vblk.virtio.VirtQueue;
import io.vblk.virtio.VirtioRing;

/**
 * The driver side of one split virtqueue, writing guest RAM as Linux's
 * {@code drivers/virtio/virtio_ring.c} does: descriptor chains from a free
 * list, direct or through an indirect table; the avail ring published with a
 * release fence before {@code avail.idx}; the kick decided after a full fence
 * ({@code used.flags}, or {@code avail_event} with EVENT_IDX:
 * {@code virtqueue_kick_prepare}); used entries read after an acquire fence on
 * {@code used.idx}; interrupts re-armed through {@code used_event} or
 * {@code avail.flags} ({@code virtqueue_enable_cb_prepare}). Every offset and
 * flag is {@link VirtioRing}'s. Raw writers (any descriptor, any avail slot,
 * any avail.idx) let the malformed-input and fuzz tests put arbitrary values
 * anywhere in the rings. Buffers may come from a bump allocator over an arena
 * of guest RAM given at construction. One thread drives a ring at a time.
 */
public final class GuestRing {
    /** One guest buffer of a chain. */
    public record Buf(long gpa, int len, boolean writable) {
    }

    /** One used-ring entry. */
    public record Used(int id, int len) {
    }

    public final GuestMemory mem;
    public final int size;
    public final long desc;
    public final long avail;
    public final long used;
    private long arenaNext;
    private final long arenaEnd;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final int[][] chains;
    private int availIdx;
    private int added;
    private int lastUsed;
    private boolean eventIdx;
    private boolean rearmUsedEvent = true;

    /**
     * Rings laid out contiguously from {@code ringBase} (16-byte aligned): the
     * descriptor table, the avail ring, the used ring at the next 4-byte
     * boundary; all zeroed. Buffers come from {@code [arena, arena + arenaSize)}.
     */
    public GuestRing(GuestMemory mem, long ringBase, int size, long arena, long arenaSize) {
        this(mem, size, ringBase, ringBase + VirtioRing.descTableSize(size),
                (ringBase + VirtioRing.descTableSize(size) + VirtioRing.availSize(size) + 3) & ~3L, arena, arenaSize);
        mem.fill(desc, footprint(size), 0);
    }

    /** Contiguous rings at {@code ringBase}, zeroed; no arena (the caller places the buffers). */
    public GuestRing(GuestMemory mem, long ringBase, int size) {
        this(mem, ringBase, size, 0, 0);
    }

    private GuestRing(GuestMemory mem, int size, long desc, long avail, long used, long arena, long arenaSize) {
        this.mem = mem;
        this.size = size;
        this.desc = desc;
        this.avail = avail;
        this.used = used;
        this.arenaNext = arena;
        this.arenaEnd = arena + arenaSize;
        this.chains = new int[size][];
        for (int i = 0; i < size; i++) {
            free.add(i);
        }
    }

    /** Rings at three separate addresses (as a vhost-user front-end places them); zeroed, no arena. */
    public static GuestRing at(GuestMemory mem, int size, long desc, long avail, long used) {
        GuestRing r = new GuestRing(mem, size, desc, avail, used, 0, 0);
        mem.fill(desc, VirtioRing.descTableSize(size), 0);
        mem.fill(avail, VirtioRing.availSize(size), 0);
        mem.fill(used, VirtioRing.usedSize(size), 0);
        return r;
    }

    /** Bytes of RAM contiguous rings of a queue of {@code size} take from their base. */
    public static long footprint(int size) {
        long availEnd = VirtioRing.descTableSize(size) + VirtioRing.availSize(size);
        return ((availEnd + 3) & ~3L) + VirtioRing.usedSize(size);
    }

    /** The first byte after contiguous rings. */
    public long ringEnd() {
        return used + VirtioRing.usedSize(size);
    }

    /** Points {@code vq} at these rings (what the transport's queue registers do). */
    public void configure(VirtQueue vq) {
        vq.setSize(size);
        vq.setDescAddr(desc);
        vq.setAvailAddr(avail);
        vq.setUsedAddr(used);
    }

    /** With EVENT_IDX negotiated: kicks follow avail_event, and {@link #pollUsed()} may re-arm used_event. */
    public void setEventIdx(boolean on) {
        eventIdx = on;
    }

    public boolean eventIdx() {
        return eventIdx;
    }

    /**
     * Whether {@link #pollUsed()} asks for an interrupt at the next used entry
     * (used_event = last seen), as Linux's {@code virtqueue_get_buf} does; off
     * for a driver that re-arms explicitly with {@link #enableInterrupts()}.
     */
    public void setRearmUsedEvent(boolean on) {
        rearmUsedEvent = on;
    }

    // ------------------------------------------------------------------ buffers

    /** {@code len} bytes of the arena aligned to {@code align}. */
    public long alloc(int len, int align) {
        long a = (arenaNext + align - 1) & -(long) align;
        if (a + len > arenaEnd) {
            throw new IllegalStateException("test arena exhausted");
        }
        arenaNext = a + len;
        return a;
    }

    /** A device-readable buffer holding {@code data}. */
    public Buf out(byte[] data) {
        long gpa = alloc(data.length, 8);
        mem.write(gpa, data);
        return new Buf(gpa, data.length, false);
    }

    /** A device-writable buffer of {@code len} bytes, pre-filled with 0xee. */
    public Buf in(int len) {
        long gpa = alloc(len, 8);
        mem.fill(gpa, len, 0xee);
        return new Buf(gpa, len, true);
    }

    // ------------------------------------------------------------------ descriptors and the avail ring

    /** Writes descriptor {@code i} of the table at {@code table} (the ring's own, or an indirect one). */
    public void writeDesc(long table, int i, long addr, long len, int flags, int next) {
        long d = table + (long) DESC_SIZE * i;
        mem.writeU64(d + DESC_ADDR, addr);
        mem.writeU32(d + DESC_LEN, len);
        mem.writeU16(d + DESC_FLAGS, flags);
        mem.writeU16(d + DESC_NEXT, next);
    }

    /** Writes descriptor {@code i} of the ring's table. */
    public void writeDesc(int i, long addr, long len, int flags, int next) {
        writeDesc(desc, i, addr, len, flags, next);
    }

    /** Takes a descriptor from the free list (for a chain written by hand). */
    public int takeDesc() {
        Integer i = free.poll();
        if (i == null) {
            throw new IllegalStateException("no free descriptors");
        }
        return i;
    }

    /** Writes {@code bufs} as a chain into {@code table}, at {@code ids}; flags from each buffer. */
    private void writeChain(long table, int[] ids, Buf[] bufs) {
        for (int i = 0; i < bufs.length; i++) {
            boolean more = i + 1 < bufs.length;
            writeDesc(table, ids[i], bufs[i].gpa(), bufs[i].len(),
                    (bufs[i].writable() ? DESC_F_WRITE : 0) | (more ? DESC_F_NEXT : 0), more ? ids[i + 1] : 0);
        }
    }

    /** A direct chain of {@code bufs}, made available at the next {@link #publish()}; returns its head. */
    public int add(Buf... bufs) {
        if (free.size() < bufs.length) {
            throw new IllegalStateException(bufs.length + " descriptors wanted, " + free.size() + " free");
        }
        int[] ids = new int[bufs.length];
        for (int i = 0; i < bufs.length; i++) {
            ids[i] = free.poll();
        }
        writeChain(desc, ids, bufs);
        chains[ids[0]] = ids;
        putAvail(ids[0]);
        return ids[0];
    }

    /** One ring descriptor pointing to an indirect table at {@code table} holding {@code bufs}; returns its head. */
    public int addIndirect(long table, Buf... bufs) {
        int[] ids = new int[bufs.length];
        for (int i = 0; i < bufs.length; i++) {
            ids[i] = i;
        }
        writeChain(table, ids, bufs);
        int head = takeDesc();
        writeDesc(head, table, (long) DESC_SIZE * bufs.length, DESC_F_INDIRECT, 0);
        chains[head] = new int[] {head};
        putAvail(head);
        return head;
    }

    /** As {@link #addIndirect(long, Buf...)} with the table taken from the arena. */
    public int addIndirect(Buf... bufs) {
        return addIndirect(alloc(DESC_SIZE * bufs.length, 16), bufs);
    }

    /** Puts {@code head} into the next avail slot, whatever it names (raw, for malformed input). */
    public void putAvail(int head) {
        mem.writeU16(avail + AVAIL_RING + 2L * ((availIdx + added) % size), head);
        added++;
    }

    /** Makes everything added visible: release fence, then avail.idx. Returns {old, new} avail.idx. */
    public int[] publish() {
        int old = availIdx;
        int now = (availIdx + added) & 0xffff;
        VarHandle.releaseFence();
        mem.writeU16(avail + AVAIL_IDX, now);
        availIdx = now;
        added = 0;
        return new int[] {old, now};
    }

    /** Whether the device wants a kick for the entries published between {@code old} and {@code now}. */
    public boolean kickNeeded(int[] oldNew) {
        VarHandle.fullFence();
        if (eventIdx) {
            return VirtioRing.needEvent(availEvent(), oldNew[1], oldNew[0]);
        }
        return (usedFlags() & USED_F_NO_NOTIFY) == 0;
    }

    /** Writes avail.idx directly (a driver bug, for the malformed tests). */
    public void setAvailIdxRaw(int idx) {
        mem.writeU16(avail + AVAIL_IDX, idx);
    }

    /** The avail.idx this driver published last. */
    public int availIdx() {
        return availIdx;
    }

    /** Starts both rings at index {@code idx} (the device side is told with setLastAvailIdx/setUsedIdx). */
    public void startAt(int idx) {
        availIdx = idx & 0xffff;
        lastUsed = idx & 0xffff;
        mem.writeU16(avail + AVAIL_IDX, availIdx);
        mem.writeU16(used + USED_IDX, lastUsed);
    }

    // ------------------------------------------------------------------ the used ring

    public int usedIdx() {
        return mem.readU16(used + USED_IDX);
    }

    public int usedFlags() {
        return mem.readU16(used + USED_FLAGS);
    }

    /** avail_event, which the device writes with EVENT_IDX. */
    public int availEvent() {
        return mem.readU16(used + VirtioRing.availEventOffset(size));
    }

    /** The used.idx this driver reaped up to. */
    public int lastUsed() {
        return lastUsed;
    }

    /** Whether used.idx moved past what was reaped; an acquire fence orders the entry reads after it. */
    public boolean moreUsed() {
        boolean more = usedIdx() != lastUsed;
        VarHandle.acquireFence();
        return more;
    }

    /** The next used entry, or null; frees the descriptors of its chain if this driver made it. */
    public Used pollUsed() {
        if (!moreUsed()) {
            return null;
        }
        long e = used + USED_RING + (long) USED_ELEM_SIZE * (lastUsed % size);
        Used u = new Used((int) mem.readU32(e), (int) mem.readU32(e + 4));
        lastUsed = (lastUsed + 1) & 0xffff;
        if (eventIdx && rearmUsedEvent) {
            setUsedEvent(lastUsed); // Linux's virtqueue_get_buf: interrupt me for the next one
        }
        int[] ids = u.id() >= 0 && u.id() < size ? chains[u.id()] : null;
        if (ids != null) {
            chains[u.id()] = null;
            for (int i : ids) {
                free.add(i);
            }
        }
        return u;
    }

    /** Writes used_event (EVENT_IDX). */
    public void setUsedEvent(int v) {
        mem.writeU16(avail + VirtioRing.usedEventOffset(size), v);
    }

    /** Sets or clears VRING_AVAIL_F_NO_INTERRUPT. */
    public void setNoInterrupt(boolean on) {
        mem.writeU16(avail + AVAIL_FLAGS, on ? AVAIL_F_NO_INTERRUPT : 0);
    }

    /**
     * Asks for an interrupt at the next used entry (Linux's
     * {@code virtqueue_enable_cb_prepare}: used_event = last used, or
     * avail.flags cleared); the caller then re-checks {@link #moreUsed()}.
     */
    public void enableInterrupts() {
        if (eventIdx) {
            setUsedEvent(lastUsed);
        } else {
            setNoInterrupt(false);
        }
        VarHandle.fullFence();
    }

    /** A polling driver (SeaBIOS): VRING_AVAIL_F_NO_INTERRUPT. */
    public void disableInterrupts() {
        setNoInterrupt(true);
    }

    /** Forgets every chain (after a device reset: the descriptors are the driver's again). */
    public void forgetAll() {
        free.clear();
        for (int i = 0; i < size; i++) {
            chains[i] = null;
            free.add(i);
        }
    }
}
