package io.vblk.virtio;

import static io.vblk.virtio.VirtioRing.DESC_F_INDIRECT;
import static io.vblk.virtio.VirtioRing.DESC_F_NEXT;
import static io.vblk.virtio.VirtioRing.DESC_F_WRITE;
import static io.vblk.virtio.VirtioRing.DESC_SIZE;

/**
 * Reads one descriptor chain into a {@link VirtQueueElement} and validates
 * it as it goes: the descriptor walk of QEMU's {@code virtqueue_split_pop}
 * ({@code virtqueue_split_read_next_desc}, the indirect-table checks, and
 * {@code virtqueue_map_desc}'s translation). Every buffer is translated to a
 * host address once, here.
 *
 * <p>Bad input (a head or link past the table, a loop, a chain longer than
 * the queue or 4 GiB, a zero-length buffer, an indirect table that is nested,
 * linked, misaligned in length, outside RAM or not negotiated, a buffer
 * outside RAM, readable after writable) breaks the owning queue through
 * {@link VirtQueue#fail}; the walk then reports failure and the queue pops
 * nothing. Used by one thread at a time, the queue's.
 */
final class DescriptorChainWalker {
    private final VirtQueue vq;

    DescriptorChainWalker(VirtQueue vq) {
        this.vq = vq;
    }

    /** {@link #walk} reached the end of the chain. */
    private static final int CHAIN_DONE = -1;
    /** {@link #walk} found bad input (the queue is broken). */
    private static final int CHAIN_FAILED = -2;

    /**
     * Walks and validates one chain (direct, then at most one indirect table at
     * its end). The walk of one table is its own method with a plain counted
     * loop: with the indirect switch inside one loop, C2's profiled loop
     * predication kept trapping and recompiling this method (a deoptimization
     * every few tens of milliseconds under load).
     */
    boolean readChain(GuestMemory mem, long desc, int size, boolean indirectDesc, int head, VirtQueueElement e) {
        e.begin(head);
        if (head >= size) {
            return vq.fail("avail ring names head descriptor " + head + ", past the table of " + size);
        }
        chainTotal = 0;
        int r = walk(mem, desc, size, size, head, e, head, false);
        if (r < 0) {
            return r == CHAIN_DONE;
        }
        // descriptor r of the direct table is INDIRECT
        long d = desc + (long) DESC_SIZE * r;
        long addr = HostMemory.getLongLE(d);
        long len = HostMemory.getIntLE(d + 8) & 0xffff_ffffL;
        int flags = HostMemory.getU16LE(d + 12);
        if (!indirectDesc) {
            return vq.fail("chain of head " + head + ": INDIRECT descriptor " + r
                    + " but VIRTIO_F_INDIRECT_DESC was not negotiated");
        }
        if ((flags & DESC_F_NEXT) != 0) {
            return vq.fail("chain of head " + head + ": descriptor " + r + " has both INDIRECT and NEXT");
        }
        if (len == 0 || len % DESC_SIZE != 0) {
            return vq.fail("chain of head " + head + ": indirect table of " + len
                    + " bytes is not a non-zero multiple of 16");
        }
        long t = mem.translate(addr, len);
        if (t < 0) {
            return vq.fail(String.format("chain of head %d: indirect table [0x%x, +0x%x) is not in RAM", head,
                    addr, len));
        }
        r = walk(mem, t, len / DESC_SIZE, size, 0, e, head, true);
        if (r >= 0) {
            return vq.fail("chain of head " + head + ": nested indirect descriptor " + r);
        }
        return r == CHAIN_DONE;
    }

    /** Why a descriptor's length or the chain's size is bad (the rare path of {@link #walk}, kept out of its loop). */
    private int badDescriptor(int head, int i, long len, long total) {
        if (len == 0) {
            vq.fail("chain of head " + head + ": descriptor " + i + " has length 0");
        } else {
            vq.fail("chain of head " + head + " is too long (" + total + " bytes)");
        }
        return CHAIN_FAILED;
    }

    private int badBuffer(int head, int i, long addr, long len, long hva, boolean readableAfterWritable, int maxSegs) {
        if (hva < 0) {
            vq.fail(String.format("chain of head %d: buffer [0x%x, +0x%x) of descriptor %d is not in RAM",
                    head, addr, len, i));
        } else if (readableAfterWritable) {
            vq.fail("chain of head " + head + ": device-readable descriptor " + i + " follows a device-writable one");
        } else {
            vq.fail("chain of head " + head + " has more buffers than the queue size " + maxSegs);
        }
        return CHAIN_FAILED;
    }

    /** Bytes of the chain being read so far (direct and indirect parts). */
    private long chainTotal;

    /**
     * Follows one descriptor table from index {@code i}: {@link #CHAIN_DONE} at
     * the end of the chain, {@link #CHAIN_FAILED} on bad input, or the index of
     * an INDIRECT descriptor (not followed).
     */
    private int walk(GuestMemory mem, long table, long tableLen, int maxSegs, int i, VirtQueueElement e, int head,
            boolean indirect) {
        int segs = e.segmentCount();
        boolean seenWritable = e.writableCount() > 0;
        long total = chainTotal;
        for (long steps = 1; steps <= tableLen; steps++) {
            long d = table + (long) DESC_SIZE * i;
            long addr = HostMemory.getLongLE(d);
            long len = HostMemory.getIntLE(d + 8) & 0xffff_ffffL;
            int flags = HostMemory.getU16LE(d + 12);
            int next = HostMemory.getU16LE(d + 14);
            if ((flags & DESC_F_INDIRECT) != 0) {
                chainTotal = total;
                return i;
            }
            total += len;
            if (len == 0 || len > Integer.MAX_VALUE || total > 0xffff_ffffL) {
                return badDescriptor(head, i, len, total);
            }
            boolean writable = (flags & DESC_F_WRITE) != 0;
            long hva = mem.translate(addr, len);
            if (hva < 0 || (!writable && seenWritable) || segs >= maxSegs) {
                return badBuffer(head, i, addr, len, hva, !writable && seenWritable, maxSegs);
            }
            seenWritable |= writable;
            segs++;
            e.add(hva, (int) len, writable);
            if ((flags & DESC_F_NEXT) == 0) {
                chainTotal = total;
                return CHAIN_DONE;
            }
            if (next >= tableLen) {
                vq.fail("chain of head " + head + ": descriptor " + i + " links to " + next + ", past the "
                        + (indirect ? "indirect table of " : "table of ") + tableLen);
                return CHAIN_FAILED;
            }
            i = next;
        }
        vq.fail(indirect
                ? "chain of head " + head + " runs longer than its indirect table of " + tableLen + " (a loop?)"
                : "chain of head " + head + " runs longer than the queue size " + tableLen + " (a loop?)");
        return CHAIN_FAILED;
    }
}
