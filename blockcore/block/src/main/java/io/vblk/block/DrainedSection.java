package io.vblk.block;

/**
 * A drained section of a node, ended by {@link #close()}: QEMU's
 * {@code bdrv_drained_begin}/{@code bdrv_drained_end} pair as a scoped
 * resource, so an early return or an exception still ends it (seed 002's
 * {@code goto out}). Closing twice is an error caught at the second close.
 */
public final class DrainedSection implements AutoCloseable {
    private final BlockNode node;
    private boolean ended;

    DrainedSection(BlockNode node) {
        this.node = node;
    }

    public BlockNode node() {
        return node;
    }

    @Override
    public void close() {
        if (ended) {
            throw new IllegalStateException("drained section of '" + node.name() + "' ended twice");
        }
        ended = true;
        node.drainedEnd();
    }
}
