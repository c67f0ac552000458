package io.vblk.job;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.LegacyBehavior;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockStatus;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Graph helpers the jobs and transactions share: walking backing chains
 * ({@code bdrv_filter_or_cow_bs}, {@code bdrv_find_overlay}), allocation
 * above a base ({@code bdrv_is_allocated_above}), replacing a node in its
 * parents ({@code bdrv_replace_node}) and inserting or removing a job's
 * filter. Everything runs in the main loop holding the nodes' context lock
 * once, or in their home context.
 */
public final class Graph {
    private Graph() {
    }

    /** The next node of a chain: the backing file, or a filter's child ({@code bdrv_filter_or_cow_bs}). */
    public static BlockNode backing(BlockNode n) {
        BlockNode b = n.child(ChildRole.BACKING);
        return b != null ? b : n.child(ChildRole.FILTERED);
    }

    /** The node below any job filters: what a device's backend really stores its data in. */
    public static BlockNode skipFilters(BlockNode n) {
        while (n != null && n.driver() instanceof JobFilter) {
            n = n.child(ChildRole.FILTERED);
        }
        return n;
    }

    /** {@code top}, its backing file, that one's backing file, ... */
    public static List<BlockNode> chain(BlockNode top) {
        List<BlockNode> l = new ArrayList<>();
        for (BlockNode n = top; n != null; n = backing(n)) {
            l.add(n);
        }
        return l;
    }

    /** The nodes strictly between {@code top} and {@code base} in top's backing chain ({@code base} null: to the end). */
    public static List<BlockNode> between(BlockNode top, BlockNode base) {
        List<BlockNode> l = new ArrayList<>();
        for (BlockNode n = backing(top); n != null && n != base; n = backing(n)) {
            l.add(n);
        }
        return l;
    }

    /** The node whose backing child is {@code n}, or null: QEMU's {@code bdrv_find_overlay}. */
    public static BlockNode overlay(BlockNode n) {
        for (BlockChild e : n.parents()) {
            if (e.role() == ChildRole.BACKING && e.parent() instanceof BlockNode) {
                return (BlockNode) e.parent();
            }
        }
        return null;
    }

    /**
     * Whether [offset, offset+bytes) is allocated in {@code top} or a backing
     * file above {@code base} (exclusive; null: the whole chain), and for how
     * many bytes the answer holds (written to {@code pnum[0]}): QEMU's
     * {@code bdrv_is_allocated_above}.
     */
    public static boolean isAllocatedAbove(BlockNode top, BlockNode base, long offset, long bytes, long[] pnum) {
        long n = bytes;
        for (BlockNode p = top; p != null && p != base; p = backing(p)) {
            if (offset >= p.length()) {
                continue; // a shorter backing file reads as zeroes here
            }
            BlockStatus st = p.blockStatus(offset, n);
            long b = st.bytes() > 0 ? Math.min(n, st.bytes()) : n;
            if (st.allocated()) {
                pnum[0] = b;
                return true;
            }
            n = b;
        }
        pnum[0] = n;
        return false;
    }

    /** Whether {@code p} is a job's edge. */
    static boolean isJob(BlockChild e) {
        return Job.of(e.parent()) != null;
    }

    /**
     * Points every parent of {@code old} — backends and nodes, not jobs, not
     * {@code nu}'s own edges — at {@code nu}: QEMU's {@code bdrv_replace_node}.
     * Both nodes are drained by the caller.
     */
    public static void replaceNode(BlockNode old, BlockNode nu) {
        for (BlockChild e : old.parents()) {
            if (isJob(e) || e.parent() == nu) {
                continue;
            }
            if (e.parent() instanceof BlockBackend) {
                ((BlockBackend) e.parent()).replaceRoot(nu);
            } else if (e.parent() instanceof BlockNode) {
                ((BlockNode) e.parent()).replaceChild(e, nu);
            } else {
                throw new BlockException("cannot replace '" + old.name() + "': unknown parent " + e.parent().parentName());
            }
        }
    }

    /** Whether a backend uses {@code n} (directly or through job filters): n is an active layer. */
    public static boolean isActiveLayer(BlockNode n) {
        for (BlockChild e : n.parents()) {
            if (e.parent() instanceof BlockBackend) {
                return true;
            }
            if (e.parent() instanceof BlockNode && ((BlockNode) e.parent()).driver() instanceof JobFilter
                    && e.role() == ChildRole.FILTERED && isActiveLayer((BlockNode) e.parent())) {
                return true;
            }
        }
        return false;
    }

    /**
     * Inserts a new filter node above {@code below}, in its context, and makes
     * every parent of {@code below} use it. Returns the filter, holding the
     * creator's reference. Main loop, holding below's context lock once.
     */
    static BlockNode insertFilter(BlockLayer layer, BlockNode below, String name, BlockDriver driver) {
        BlockNode f = layer.addNode(name, driver, false);
        try {
            if (f.context() != below.context()) {
                layer.setAioContext(f, below.context());
            }
            try (DrainedSection d = below.drainedBegin()) {
                f.attachChild(below, "file", ChildRole.FILTERED);
                replaceNode(below, f);
            }
            return f;
        } catch (RuntimeException e) {
            f.unref();
            throw e;
        }
    }

    /**
     * Takes a filter out again: its parents use its child once more (under a
     * drained section of the child), then the filter is released. A job's
     * clean step (stream, a mirror that did not pivot) — QEMU's
     * {@code bdrv_backup_top_drop} from {@code backup_clean} — so it runs in
     * the main loop with the job's context already acquired once by the
     * completion ({@link JobCompletion}); the drain's {@code pollWhile}
     * releases that one hold, and the IOThread runs the drain hook. With
     * {@link LegacyBehavior#ACQUIRE_CONTEXT_IN_JOB_CLEAN} the context is
     * acquired once more around the drop, as {@code backup_clean} did before
     * eca0f3524a: the wait releases one of two holds and the IOThread never
     * gets the lock.
     */
    static void removeFilter(BlockNode filter) {
        AioContext ctx = filter.context();
        boolean again = ctx.legacy().isOn(LegacyBehavior.ACQUIRE_CONTEXT_IN_JOB_CLEAN);
        try (AioContextLock.Held h = again ? ctx.acquire() : null) {
            BlockNode below = filter.child(ChildRole.FILTERED);
            try (DrainedSection d = below.drainedBegin()) {
                replaceNode(filter, below);
            }
            releaseFilter(filter);
        }
    }

    /** Detaches a filter no parent uses any more from its children (ending the quiesce they gave it) and drops it. */
    static void releaseFilter(BlockNode filter) {
        for (BlockChild c : filter.children()) {
            filter.detachChild(c);
        }
        filter.unref();
    }

    /** The host path of the image a node reads (for a backing-file name), or null: the node's {@code bs->filename}. */
    public static Path imagePath(BlockNode n) {
        return n.driver().imagePath();
    }

    /**
     * Rewrites {@code n}'s image metadata to name {@code base} as its backing
     * file (or none): QEMU's {@code bdrv_change_backing_file}. A driver that
     * cannot record a backing file refuses with a {@link BlockException}.
     */
    static int changeBackingFile(BlockNode n, BlockNode base) {
        String name = null;
        String fmt = null;
        if (base != null) {
            Path p = imagePath(base);
            if (p == null) {
                throw new BlockException("'" + base.name() + "' is not an image file and cannot be a backing file");
            }
            name = p.toAbsolutePath().toString();
            fmt = base.driver().formatName();
        }
        return n.driver().changeBackingFile(name, fmt);
    }
}
