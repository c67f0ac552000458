package io.vblk.virtio;

import java.lang.invoke.VarHandle;
import java.util.ArrayDeque;
import java.util.Arrays;

/**
 * The driver side of one split virtqueue, writing guest RAM the way a real
 * driver does (Linux's virtio_ring.c in miniature): descriptor chains from a
 * free list, indirect tables, the avail ring with a release fence before
 * avail.idx, event-index kick suppression, and reading used entries with an
 * acquire fence after used.idx. Buffers come from a bump allocator over an
 * arena of guest RAM. Also writes raw, malformed things for the error tests.
 */
final class TestDriver {
    static final int NEXT = VirtioRing.DESC_F_NEXT;
    static final int WRITE = VirtioRing.DESC_F_WRITE;
    static final int INDIRECT = VirtioRing.DESC_F_INDIRECT;

    /** One guest buffer of a chain. */
    record Buf(long gpa, int len, boolean writable) {
    }

    /** One used ring entry. */
    record Used(int id, int len) {
    }

    final GuestMemory mem;
    final int size;
    final long desc;
    final long avail;
    final long used;
    private final long arenaEnd;
    private long arenaNext;
    private final ArrayDeque<Integer> free = new ArrayDeque<>();
    private final int[][] chains;
    private int availIdx;
    private int added;
    private int lastUsed;
    boolean eventIdx;
    /** With EVENT_IDX, ask for an interrupt at the next used entry after each one consumed (as Linux does). */
    boolean rearmUsedEvent = true;

    /** Rings at {@code ringBase} (16-byte aligned), buffers allocated from {@code [arena, arena + arenaSize)}. */
    TestDriver(GuestMemory mem, long ringBase, int size, long arena, long arenaSize) {
        this.mem = mem;
        this.size = size;
        this.desc = ringBase;
        this.avail = desc + 16L * size;
        this.used = (avail + 6 + 2L * size + 3) & ~3L;
        this.arenaNext = arena;
        this.arenaEnd = arena + arenaSize;
        this.chains = new int[size][];
        mem.fill(desc, used + 6 + 8L * size - desc, 0);
        for (int i = 0; i < size; i++) {
            free.add(i);
        }
    }

    long ringEnd() {
        return used + 6 + 8L * size;
    }

    /** Points {@code vq} at these rings (what the transport's queue registers do). */
    void configure(VirtQueue vq) {
        vq.setSize(size);
        vq.setDescAddr(desc);
        vq.setAvailAddr(avail);
        vq.setUsedAddr(used);
    }

    // ------------------------------------------------------------------ buffers

    long alloc(int len, int align) {
        long a = (arenaNext + align - 1) & -(long) align;
        if (a + len > arenaEnd) {
            throw new IllegalStateException("test arena exhausted");
        }
        arenaNext = a + len;
        return a;
    }

    Buf out(byte[] data) {
        long gpa = alloc(data.length, 8);
        mem.write(gpa, data);
        return new Buf(gpa, data.length, false);
    }

    Buf in(int len) {
        long gpa = alloc(len, 8);
        mem.fill(gpa, len, 0xee);
        return new Buf(gpa, len, true);
    }

    // ------------------------------------------------------------------ adding chains

    void writeDesc(long table, int i, long addr, long len, int flags, int next) {
        long d = table + 16L * i;
        mem.writeU64(d, addr);
        mem.writeU32(d + 8, len);
        mem.writeU16(d + 12, flags);
        mem.writeU16(d + 14, next);
    }

    void writeDesc(int i, long addr, long len, int flags, int next) {
        writeDesc(desc, i, addr, len, flags, next);
    }

    int takeDesc() {
        Integer i = free.poll();
        if (i == null) {
            throw new IllegalStateException("no free descriptors");
        }
        return i;
    }

    /** A direct chain of {@code bufs}; returns its head (made available at the next {@link #publish()}). */
    int addChain(Buf... bufs) {
        int[] ids = new int[bufs.length];
        for (int i = 0; i < bufs.length; i++) {
            ids[i] = takeDesc();
        }
        for (int i = 0; i < bufs.length; i++) {
            int flags = (bufs[i].writable() ? WRITE : 0) | (i + 1 < bufs.length ? NEXT : 0);
            writeDesc(ids[i], bufs[i].gpa(), bufs[i].len(), flags, i + 1 < bufs.length ? ids[i + 1] : 0);
        }
        chains[ids[0]] = ids;
        addHead(ids[0]);
        return ids[0];
    }

    /** One ring descriptor pointing to an indirect table holding {@code bufs}. */
    int addIndirect(Buf... bufs) {
        long table = alloc(16 * bufs.length, 16);
        for (int i = 0; i < bufs.length; i++) {
            int flags = (bufs[i].writable() ? WRITE : 0) | (i + 1 < bufs.length ? NEXT : 0);
            writeDesc(table, i, bufs[i].gpa(), bufs[i].len(), flags, i + 1 < bufs.length ? i + 1 : 0);
        }
        int head = takeDesc();
        writeDesc(head, table, 16L * bufs.length, INDIRECT, 0);
        chains[head] = new int[] {head};
        addHead(head);
        return head;
    }

    /** Puts {@code head} into the next avail slot without writing any descriptor (raw, for malformed input). */
    void addHead(int head) {
        mem.writeU16(avail + 4 + 2L * ((availIdx + added) % size), head);
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

    /** Whether the device asked to be kicked for the entries between {@code old} and {@code now}. */
    boolean kickNeeded(int[] oldNew) {
        VarHandle.fullFence();
        if (eventIdx) {
            int availEvent = mem.readU16(used + 4 + 8L * size);
            return VirtioRing.needEvent(availEvent, oldNew[1], oldNew[0]);
        }
        return (mem.readU16(used) & VirtioRing.USED_F_NO_NOTIFY) == 0;
    }

    /** Writes avail.idx directly (a driver bug for the malformed tests). */
    void setAvailIdxRaw(int idx) {
        mem.writeU16(avail + 2, idx);
    }

    // ------------------------------------------------------------------ used ring

    int usedIdx() {
        return mem.readU16(used + 2);
    }

    /** The next used entry, or null; frees its descriptors. */
    Used pollUsed() {
        int idx = usedIdx();
        VarHandle.acquireFence();
        if (idx == lastUsed) {
            return null;
        }
        long e = used + 4 + 8L * (lastUsed % size);
        Used u = new Used((int) mem.readU32(e), (int) mem.readU32(e + 4));
        lastUsed = (lastUsed + 1) & 0xffff;
        if (eventIdx && rearmUsedEvent) {
            setUsedEvent(lastUsed); // Linux's virtqueue_enable_cb: interrupt me for the next one
        }
        int[] ids = u.id() < size ? chains[u.id()] : null;
        if (ids != null) {
            chains[u.id()] = null;
            for (int i : ids) {
                free.add(i);
            }
        }
        return u;
    }

    void setUsedEvent(int v) {
        mem.writeU16(avail + 4 + 2L * size, v);
    }

    void setNoInterrupt(boolean on) {
        mem.writeU16(avail, on ? VirtioRing.AVAIL_F_NO_INTERRUPT : 0);
    }

    int availEvent() {
        return mem.readU16(used + 4 + 8L * size);
    }

    int usedFlags() {
        return mem.readU16(used);
    }

    /** Starts both rings at index {@code idx} (the device side is told with setLastAvailIdx/setUsedIdx). */
    void startAt(int idx) {
        availIdx = idx & 0xffff;
        lastUsed = idx & 0xffff;
        mem.writeU16(avail + 2, availIdx);
        mem.writeU16(used + 2, lastUsed);
    }

    static byte[] bytes(int len, int seed) {
        byte[] b = new byte[len];
        for (int i = 0; i < len; i++) {
            b[i] = (byte) (seed + i * 7);
        }
        return b;
    }

    static byte[] concat(byte[]... parts) {
        int n = Arrays.stream(parts).mapToInt(p -> p.length).sum();
        byte[] out = new byte[n];
        int o = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, o, p.length);
            o += p.length;
        }
        return out;
    }
}
