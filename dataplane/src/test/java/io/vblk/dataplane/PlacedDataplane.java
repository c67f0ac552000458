package io.vblk.dataplane;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockBackend;
import io.vblk.virtio.blk.IoeventfdOps;

/**
 * The real {@link VirtioBlkDataplane} with, optionally, the backend placed in
 * an IOThread other than queue 0's once the dataplane has started. The
 * dataplane keeps the backend with queue 0 (as QEMU's
 * {@code virtio_blk_start_ioeventfd} does with {@code vq_aio_context[0]}), so
 * no queue of a one-queue device would ever hand requests to another context;
 * moving the backend right after the start (a drained {@code setAioContext},
 * exactly what the block layer does for any move) makes every queue cross, as
 * the cross-context tests need. Start, stop and drained sections are the real
 * dataplane's; {@link #isStarted()} turns true only once the backend is
 * where it belongs. Main loop only, as the dataplane.
 */
final class PlacedDataplane implements IoeventfdOps {
    private final VirtioBlkDataplane real;
    private final BlockBackend blk;
    private final AioContext backendCtx;
    private volatile boolean placed;

    /** {@code backendCtx} null: the backend stays where the dataplane puts it. */
    PlacedDataplane(VirtioBlkDataplane real, BlockBackend blk, AioContext backendCtx) {
        this.real = real;
        this.blk = blk;
        this.backendCtx = backendCtx;
    }

    VirtioBlkDataplane real() {
        return real;
    }

    /** Started, with the backend in its place. */
    boolean isStarted() {
        return placed && real.isStarted();
    }

    @Override
    public void startIoeventfd() {
        real.startIoeventfd();
        if (!real.isStarted()) {
            return;
        }
        if (backendCtx != null && blk.context() != backendCtx) {
            blk.pin(null);
            blk.setAioContext(backendCtx);
            blk.pin("test: backend kept in '" + backendCtx.name() + "', apart from queue 0");
        }
        placed = true;
    }

    @Override
    public void stopIoeventfd() {
        placed = false;
        real.stopIoeventfd();
    }

    @Override
    public void drainedBegin() {
        real.drainedBegin();
    }

    @Override
    public boolean drainedEnd() {
        return real.drainedEnd();
    }
}
