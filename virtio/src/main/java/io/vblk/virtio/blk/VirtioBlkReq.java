package io.vblk.virtio.blk;

import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;
import io.vblk.virtio.VirtQueueElement;

/**
 * One request from the guest: QEMU's {@code VirtIOBlockReq}. Pooled per
 * queue and reused, so a request costs no allocation. It is its own block
 * completion; {@link #next} links it in a cross-context hand-off list.
 */
final class VirtioBlkReq implements BlockCompletion {
    final VirtioBlk dev;
    final QueueState queue;
    final VirtQueueElement elem = new VirtQueueElement(8);
    final IoVec qiov = new IoVec(8);
    int type;
    long sector;
    long offset;
    long bytes;
    int flags;
    /** Host address of the status byte (the last writable byte of the chain). */
    long statusAddr;
    /** Bytes the device writes into the guest's buffers, status byte included. */
    int inLen;
    int status;
    int ret;
    int epoch;
    VirtioBlkReq next;

    VirtioBlkReq(VirtioBlk dev, QueueState queue) {
        this.dev = dev;
        this.queue = queue;
    }

    @Override
    public void complete(int r) {
        ret = r;
        dev.blockCompleted(this);
    }
}
