package io.vblk.block;

import io.vblk.aio.Errno;

import java.util.ArrayList;
import java.util.List;

/**
 * Switching a node between read-only and read-write in place: QEMU's
 * {@code bdrv_reopen} ({@code bdrv_reopen_multiple} with the node and its
 * protocol children as the queue). Commit start makes its base writable with
 * it; commit, stream and snapshot make a node read-only again.
 *
 * <p>The reopen runs in a drained section of the node (prepare: flush when
 * going read-only, open the new file descriptors; commit: switch to them and
 * set the flags; each driver's part is {@link BlockDriver#reopen}, QEMU's
 * {@code .bdrv_reopen_prepare}/{@code commit}). Nothing else waits here: a
 * job that must not run during a graph change is stopped by its caller. Run
 * it in the node's home context or the main loop holding that context's lock
 * once.
 */
public final class BlockReopen {
    private BlockReopen() {
    }

    /** Reopens {@code node} and its file children read-only or read-write; a failure changes nothing. */
    public static void setReadOnly(BlockNode node, boolean readOnly) {
        node.checkOwned("reopen");
        List<BlockNode> queue = new ArrayList<>();
        collect(node, queue);
        boolean change = false;
        for (BlockNode n : queue) {
            change |= n.isReadOnly() != readOnly || n.driver().needsReopen(readOnly);
        }
        if (!change) {
            return;
        }
        try (DrainedSection d = node.drainedBegin()) {
            if (readOnly && !node.isReadOnly()) {
                int ret = node.flushSync();
                if (ret < 0) {
                    throw new BlockException("cannot reopen '" + node.name() + "' read-only: flush failed with "
                            + Errno.name(-ret));
                }
            }
            List<BlockDriver> done = new ArrayList<>();
            for (BlockNode n : queue) {
                BlockDriver drv = n.driver();
                boolean changes = drv.needsReopen(readOnly);
                int ret = drv.reopen(readOnly);
                if (ret < 0) {
                    for (BlockDriver u : done) {
                        u.reopen(!readOnly);
                    }
                    Object what = drv.imagePath() != null ? drv.imagePath() : n.name();
                    throw new BlockException("cannot reopen '" + what + "' " + (readOnly ? "read-only" : "read-write")
                            + ": " + Errno.name(-ret));
                }
                if (changes) {
                    done.add(drv);
                }
            }
            for (BlockNode n : queue) {
                n.setReadOnly(readOnly);
            }
        }
    }

    /** The node and, recursively, its protocol ({@link ChildRole#FILE}) children: what a reopen of the node covers. */
    private static void collect(BlockNode n, List<BlockNode> out) {
        out.add(n);
        for (BlockChild c : n.children()) {
            if (c.role() == ChildRole.FILE) {
                collect(c.node(), out);
            }
        }
    }
}
