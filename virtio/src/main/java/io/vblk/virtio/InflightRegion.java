package io.vblk.virtio;

import java.lang.invoke.VarHandle;
import java.util.Arrays;

/**
 * One queue's part of a vhost-user inflight region (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD),
 * in the split-ring layout docs/interop/vhost-user.rst defines and
 * libvhost-user names {@code VuVirtqInflight}: a 16-byte header (u64
 * features, u16 version, u16 desc_num, u16 last_batch_head, u16 used_idx)
 * then one 16-byte {@code DescStateSplit} per descriptor (u8 inflight, 5
 * bytes padding, u16 next, u64 counter). The region lives in shared memory
 * that outlives the back-end process, so a back-end that crashed at any
 * instruction leaves enough for the next one to resubmit what was in flight.
 *
 * <p>The order of the writes (each pair separated by a release fence so the
 * JIT keeps them in program order; a killed process's stores all land):
 * <ul>
 * <li>pop: {@code counter} of the head, then {@code inflight = 1}
 *     ({@code vu_queue_inflight_get});</li>
 * <li>push: the head is linked in front of this batch's list
 *     ({@code next}), then {@code last_batch_head} names it
 *     ({@code vu_queue_inflight_pre_put});</li>
 * <li>flush, after {@code used->idx} was written: every head of the batch
 *     gets {@code inflight = 0}, then the header's {@code used_idx} =
 *     {@code used->idx} ({@code vu_queue_inflight_post_put}).</li>
 * </ul>
 * A crash between the used index and the header's copy of it is repaired by
 * {@link #recover}: the batch list from {@code last_batch_head} is cleared.
 *
 * <p>The memory is the front-end's: every value read back is bounded
 * (heads by the ring size, walks by the ring size). One thread at a time,
 * the queue's.
 */
public final class InflightRegion {
    /** {@code VuVirtqInflight} header bytes. */
    public static final int HEADER_SIZE = 16;
    /** {@code DescStateSplit} bytes. */
    public static final int DESC_STATE_SIZE = 16;
    /** Each queue's region is aligned to this (libvhost-user's INFLIGHT_ALIGNMENT). */
    public static final int ALIGNMENT = 64;
    /** The version a back-end writes into a fresh region. */
    public static final int VERSION = 1;

    private static final int H_VERSION = 8;
    private static final int H_DESC_NUM = 10;
    private static final int H_LAST_BATCH_HEAD = 12;
    private static final int H_USED_IDX = 14;
    private static final int D_NEXT = 6;
    private static final int D_COUNTER = 8;

    private final long base;
    private final int size;
    private long counter;
    private int batchHead = -1;

    /** The region of one queue of {@code size} descriptors at host address {@code base}. */
    public InflightRegion(long base, int size) {
        this.base = base;
        this.size = size;
    }

    /** Bytes of one queue's region for rings of up to {@code queueSize} descriptors. */
    public static long queueRegionSize(int queueSize) {
        long raw = HEADER_SIZE + (long) DESC_STATE_SIZE * queueSize;
        return (raw + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    private long desc(int head) {
        return base + HEADER_SIZE + (long) DESC_STATE_SIZE * head;
    }

    /** Whether descriptor {@code head} is marked in flight. */
    public boolean isInflight(int head) {
        return HostMemory.getU8(desc(head)) != 0;
    }

    public int usedIdx() {
        return HostMemory.getU16LE(base + H_USED_IDX);
    }

    public int version() {
        return HostMemory.getU16LE(base + H_VERSION);
    }

    /** The chain of {@code head} was taken from the avail ring. */
    void popped(int head) {
        long d = desc(head);
        HostMemory.putLongLE(d + D_COUNTER, ++counter);
        VarHandle.releaseFence();
        HostMemory.putU8(d, 1);
    }

    /** A used entry for {@code head} was written (not yet published). */
    void pushed(int head) {
        HostMemory.putShortLE(desc(head) + D_NEXT, batchHead < 0 ? head : batchHead);
        VarHandle.releaseFence();
        HostMemory.putShortLE(base + H_LAST_BATCH_HEAD, head);
        batchHead = head;
    }

    /** {@code n} pushed entries were published: {@code used->idx} is {@code usedIdx} now. */
    void flushed(int n, int usedIdx) {
        VarHandle.releaseFence();
        clearBatch(n);
        VarHandle.releaseFence();
        HostMemory.putShortLE(base + H_USED_IDX, usedIdx);
        batchHead = -1;
    }

    /** Clears {@code n} heads of the batch list from {@code last_batch_head} (bounded: the list is the front-end's memory). */
    private void clearBatch(int n) {
        int h = HostMemory.getU16LE(base + H_LAST_BATCH_HEAD);
        for (int i = 0; i < n && i < size && h < size; i++) {
            long d = desc(h);
            HostMemory.putU8(d, 0);
            h = HostMemory.getU16LE(d + D_NEXT);
        }
    }

    /**
     * After a (re)start: a fresh region (version 0) is initialised and nothing
     * is resubmitted; otherwise a batch published but not yet cleared is
     * cleared ({@code used->idx} ahead of the header's copy), and the heads
     * still in flight are returned oldest first, as libvhost-user's
     * {@code vu_check_queue_inflights} orders its resubmit list.
     *
     * @param usedIdxInRing {@code used->idx} as the ring holds it
     */
    int[] recover(int usedIdxInRing) {
        batchHead = -1;
        if (version() == 0) {
            HostMemory.putShortLE(base + H_DESC_NUM, size);
            HostMemory.putShortLE(base + H_USED_IDX, usedIdxInRing);
            VarHandle.releaseFence();
            HostMemory.putShortLE(base + H_VERSION, VERSION);
            counter = 0;
            return new int[0];
        }
        int unflushed = (usedIdxInRing - usedIdx()) & 0xffff;
        if (unflushed != 0) {
            clearBatch(unflushed);
            VarHandle.releaseFence();
            HostMemory.putShortLE(base + H_USED_IDX, usedIdxInRing);
        }
        int n = 0;
        long[] keyed = new long[size];
        long max = 0;
        for (int i = 0; i < size; i++) {
            long d = desc(i);
            if (HostMemory.getU8(d) != 0) {
                long c = HostMemory.getLongLE(d + D_COUNTER);
                max = Math.max(max, c);
                keyed[n++] = i; // sorted below by counter, then head
            }
        }
        Long[] order = new Long[n];
        for (int i = 0; i < n; i++) {
            order[i] = keyed[i];
        }
        Arrays.sort(order, (a, b) -> {
            int c = Long.compareUnsigned(HostMemory.getLongLE(desc(a.intValue()) + D_COUNTER),
                    HostMemory.getLongLE(desc(b.intValue()) + D_COUNTER));
            return c != 0 ? c : Long.compare(a, b);
        });
        int[] heads = new int[n];
        for (int i = 0; i < n; i++) {
            heads[i] = order[i].intValue();
        }
        counter = max;
        return heads;
    }
}
