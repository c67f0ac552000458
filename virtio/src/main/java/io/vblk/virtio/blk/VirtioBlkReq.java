package io.vblk.virtio.blk;

import io.vblk.block.BlockCompletion;
import io.vblk.block.IoVec;
import io.vblk.virtio.VirtQueueElement;

/**
 * One request from the guest: QEMU's {@code VirtIOBlockReq}. Pooled per
 * queue and reused, so a request costs no allocation. It is also the
 * parser's typed outcome ({@link #kind} and the fields it names), filled in
 * place by {@link VirtioBlkRequestParser} so no outcome object is made per
 * request; it is its own block completion; {@link #next} links it in a
 * cross-context hand-off list.
 */
final class VirtioBlkReq implements BlockCompletion {
    /** What the parser made of the chain; the device executes accordingly. */
    enum Kind {
        /** Go to the backend: {@link #type}, {@link #offset}, {@link #bytes}, {@link #flags}, {@link #qiov}. */
        SUBMIT,
        /** Answer without touching the disk: {@link #status} (GET_ID: the serial fills {@link #inLen} - 1 bytes). */
        ANSWER,
        /** The chain breaks the protocol: {@link #error} says how; the device needs reset (QEMU's virtio_error). */
        GUEST_ERROR
    }

    final VirtioBlk dev;
    final QueueState queue;
    final VirtQueueElement elem = new VirtQueueElement(8);
    final IoVec qiov = new IoVec(8);
    /** Header or segment bytes that straddle descriptors are gathered here (no allocation per request). */
    final byte[] scratch = new byte[16];
    Kind kind;
    /** Why a {@link Kind#GUEST_ERROR} chain is malformed (built on the error path only). */
    String error;
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
