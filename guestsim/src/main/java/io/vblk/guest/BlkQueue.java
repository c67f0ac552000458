package io.vblk.guest;

import io.vblk.firmware.Platform;
import io.vblk.virtio.blk.VirtioBlkAbi;

/**
 * One virtio-blk queue as a Linux blk-mq hardware context drives it: a ring,
 * request slots each with a header, a data buffer and a status byte in guest
 * RAM, and the queue's notify address and MSI vector. Owned by one vCPU.
 */
public final class BlkQueue {

    private Platform p;
    private final int index;
    private final SplitRing ring;
    private final long notifyAddr;
    private final int vector;
    private final GuestAllocator mem;
    private long[] header = new long[0];
    private long[] data = new long[0];
    private int bufferSize;
    private final long[] addr = new long[3];
    private final int[] len = new int[3];
    private final boolean[] writable = new boolean[3];
    private long kicks;

    BlkQueue(Platform p, int index, SplitRing ring, long notifyAddr, int vector, GuestAllocator mem) {
        this.p = p;
        this.index = index;
        this.ring = ring;
        this.notifyAddr = notifyAddr;
        this.vector = vector;
        this.mem = mem;
    }

    public int index() {
        return index;
    }

    /**
     * Hands the queue to the vCPU whose platform is given: its accesses are then
     * that vCPU's (guest RAM is shared, but a stop or pause kicks out the CPU
     * that is running). Call on the owning vCPU before using the queue there.
     */
    public void bindTo(Platform platform) {
        p = platform;
        ring.bindTo(platform);
    }

    /** The MSI vector (message data) this queue's completions arrive on. */
    public int vector() {
        return vector;
    }

    public int ringSize() {
        return ring.size();
    }

    public long kicks() {
        return kicks;
    }

    /** Allocates {@code slots} request slots with {@code bufferSize}-byte data buffers. */
    public void allocateSlots(int slots, int bufferSize) {
        if (slots * 3 > ring.size()) {
            throw new IllegalArgumentException(slots + " requests in flight need " + slots * 3
                    + " descriptors; the queue has " + ring.size());
        }
        this.bufferSize = bufferSize;
        header = new long[slots];
        data = new long[slots];
        for (int i = 0; i < slots; i++) {
            header[i] = mem.alloc(32, 16); // 16-byte header, then the status byte at +16
            data[i] = mem.alloc(bufferSize, 4096);
        }
    }

    public int slots() {
        return header.length;
    }

    /** Guest-physical address of a slot's data buffer. */
    public long buffer(int slot) {
        return data[slot];
    }

    /**
     * Queues a request: visible at once to a device that polls the ring, and
     * announced to one that waits by the next {@link #kick()}.
     */
    public void submit(int slot, int type, long sector, int bytes) {
        if (bytes > bufferSize) {
            throw new IllegalArgumentException(bytes + " bytes exceed the slot buffer of " + bufferSize);
        }
        long h = header[slot];
        p.ramWrite32(h, type);
        p.ramWrite32(h + 4, 0);
        p.ramWrite64(h + 8, sector);
        p.ramWrite8(h + VirtioBlkAbi.OUTHDR_SIZE, VirtioBlkAbi.S_UNSUPP);
        int n = 0;
        addr[n] = h;
        len[n] = 16;
        writable[n++] = false;
        if (bytes > 0) {
            addr[n] = data[slot];
            len[n] = bytes;
            writable[n++] = type == VirtioBlkAbi.T_IN;
        }
        addr[n] = h + VirtioBlkAbi.OUTHDR_SIZE;
        len[n] = 1;
        writable[n++] = true;
        ring.add(addr, len, writable, n, slot);
    }

    /** Notifies the device of the requests queued since the last kick, if it asked to be (EVENT_IDX / NO_NOTIFY). */
    public boolean kick() {
        if (ring.kickPrepare()) {
            p.mmioWrite(notifyAddr, 2, index);
            kicks++;
            return true;
        }
        return false;
    }

    /** Next completed slot, or -1. */
    public int reap() {
        return ring.getBuf();
    }

    public int status(int slot) {
        return p.ramRead8(header[slot] + VirtioBlkAbi.OUTHDR_SIZE);
    }

    public boolean enableInterrupts() {
        return ring.enableCallbacks();
    }

    public void disableInterrupts() {
        ring.disableCallbacks();
    }
}
