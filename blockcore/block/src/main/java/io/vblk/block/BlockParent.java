package io.vblk.block;

import io.vblk.aio.AioContext;

/**
 * Whatever holds a child edge to a node: another node, a {@link BlockBackend}
 * (and through it the device) or a block job. QEMU's {@code BdrvChildClass}
 * callbacks: a drained section of the child quiesces its parents, so nobody
 * submits new requests to it, and asks them whether they are still busy.
 */
public interface BlockParent {
    /** A name for messages and dumps. */
    String parentName();

    /** The child is entering a drained section: stop submitting new requests to it. */
    void childDrainedBegin(BlockChild child);

    /** The matching end: submitting may resume. */
    void childDrainedEnd(BlockChild child);

    /** Whether the parent still has activity the drain must wait for (requests it issued, a running job step). */
    boolean childDrainedPoll(BlockChild child);

    /** Why the parent cannot follow its child into {@code ctx}, or null when it can. */
    default String cannotSetAioContext(BlockChild child, AioContext ctx) {
        return null;
    }

    /** The child moved to {@code ctx}; the parent follows. Called while drained. */
    default void childAioContextChanged(BlockChild child, AioContext ctx) {
    }

    /**
     * The child is about to leave its context (still in it, drained, its old
     * context's lock held by the mover): QEMU's {@code bdrv_detach_aio_context}
     * notifier, where a block job stops ({@code block_job_detach_aio_context}).
     */
    default void childDetachAioContext(BlockChild child) {
    }
}
