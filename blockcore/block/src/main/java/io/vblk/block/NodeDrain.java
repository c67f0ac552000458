package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioWait;

/**
 * The drained sections of one {@link BlockNode}: QEMU's block/io.c
 * {@code bdrv_drained_begin}/{@code bdrv_drained_end} with
 * {@code bdrv_do_drained_begin_quiesce}, {@code bdrv_drain_poll},
 * {@code bdrv_drain_invoke} and the parents' side
 * ({@code bdrv_parent_drained_begin_single}/{@code _end_single}).
 *
 * <p>A drained section quiesces the node and, recursively, every parent
 * above it (nodes, backends and through them the device, jobs), so that
 * nobody submits new requests; disables the home context's external
 * handlers; runs the driver's drain hook in the home context; and polls with
 * {@link AioWait#pollWhile} until the node and its parents are idle and the
 * BHs the wait caused have run (seed 000). Children are not drained: every
 * request in a child that this node issued is counted in this node's
 * in-flight count. Each parent edge remembers how often it was quiesced
 * ({@link BlockChild#parentQuiesceCount}), so a parent that joins, leaves or
 * moves between drained nodes is told exactly once.
 */
final class NodeDrain {
    private final BlockNode node;
    private final BlockDriver driver;
    private volatile int quiesceCounter;

    NodeDrain(BlockNode node, BlockDriver driver) {
        this.node = node;
        this.driver = driver;
    }

    int quiesceCounter() {
        return quiesceCounter;
    }

    /** QEMU's {@code bdrv_drained_begin}: quiesce, then wait until the node and its parents are idle. */
    DrainedSection begin() {
        node.checkOwned("drained begin");
        quiesce(null);
        AioWait.pollWhile(node.context(), this::poll);
        return new DrainedSection(node);
    }

    /** QEMU's {@code bdrv_drained_end}. */
    void end() {
        node.checkOwned("drained end");
        unquiesce(null);
    }

    /** Whether the node or a parent still has activity (QEMU's {@code bdrv_drain_poll}). */
    boolean poll() {
        if (node.inFlight() > 0) {
            return true;
        }
        for (BlockChild p : node.parentEdges()) {
            if (p.parent().childDrainedPoll(p)) {
                return true;
            }
        }
        return false;
    }

    /** QEMU's {@code bdrv_do_drained_begin_quiesce}: the node and its parents stop, without waiting. */
    void quiesce(BlockChild from) {
        if (quiesceCounter++ == 0) {
            node.context().disableExternal();
            for (BlockChild p : node.parentEdges()) {
                if (p != from) {
                    p.parentQuiesceCount++;
                    p.parent().childDrainedBegin(p);
                }
            }
            invoke(true);
        }
    }

    void unquiesce(BlockChild from) {
        if (quiesceCounter <= 0) {
            throw new IllegalStateException("drained end on node '" + node.name() + "' without a drained begin");
        }
        if (--quiesceCounter == 0) {
            invoke(false);
            for (BlockChild p : node.parentEdges()) {
                if (p != from && p.parentQuiesceCount > 0) {
                    p.parentQuiesceCount--;
                    p.parent().childDrainedEnd(p);
                }
            }
            node.context().enableExternal();
        }
    }

    /**
     * Runs the driver's drain hook in the home context, as QEMU's
     * {@code bdrv_drain_invoke} does, counted in flight so the drain waits for it.
     */
    private void invoke(boolean begin) {
        node.incInFlight();
        node.context().bhScheduleOneshot(begin ? "drain-begin:" + node.name() : "drain-end:" + node.name(), () -> {
            if (begin) {
                driver.drainBegin();
            } else {
                driver.drainEnd();
            }
            node.decInFlight();
        });
    }

    /** A parent that joins a drained node is quiesced for it (once, as every parent is). */
    void beginParentQuiesce(BlockChild edge) {
        if (quiesceCounter > 0 && edge.parentQuiesceCount == 0) {
            edge.parentQuiesceCount++;
            edge.parent().childDrainedBegin(edge);
        }
    }

    /** A parent that leaves a node it was quiesced for resumes. */
    static void endParentQuiesce(BlockChild edge) {
        while (edge.parentQuiesceCount > 0) {
            edge.parentQuiesceCount--;
            edge.parent().childDrainedEnd(edge);
        }
    }

    /** After {@code edge} moved to this node: the parent is quiesced exactly if this node is drained. */
    void transferParentQuiesce(BlockChild edge) {
        if (quiesceCounter > 0) {
            beginParentQuiesce(edge);
        } else {
            endParentQuiesce(edge);
        }
    }

    /** The node leaves its context: a drained node's disable of external handlers moves with it. */
    void detachAioContext(AioContext old) {
        if (quiesceCounter > 0) {
            old.enableExternal();
        }
    }

    void attachAioContext(AioContext newCtx) {
        if (quiesceCounter > 0) {
            newCtx.disableExternal();
        }
    }
}
