package io.vblk.txn;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.Errno;
import io.vblk.aio.LegacyBehavior;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.BlockReopen;
import io.vblk.block.ChildRole;
import io.vblk.block.DrainedSection;
import io.vblk.job.Graph;
import io.vblk.job.Job;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The {@code blockdev-snapshot-sync} transaction action (QEMU's
 * {@code external_snapshot_prepare/commit/abort/clean}, blockdev.c): creates
 * a qcow2 overlay whose backing file is the node's image, opens it, and puts
 * it on top of the node — the device now writes the overlay and the old node
 * becomes its read-only backing file.
 *
 * <p>The old node is drained from prepare to clean. The node's AioContext
 * lock is taken inside each phase only and released at its end — every early
 * return of prepare releases it too (seed 002's {@code goto out}, here a
 * try/finally). With {@link LegacyBehavior#SNAPSHOT_LOCK_ACROSS_TRANSACTION}
 * prepare keeps the lock until clean, as before the seed's patch: a second
 * action on a node of the same IOThread then holds it twice, its drained
 * section waits with {@code pollWhile}, which releases it once, and the
 * IOThread can never run what the wait is waiting for.
 *
 * <p>An abort puts the old node back in every parent, closes the overlay and
 * deletes the image file it created: nothing is left behind.
 *
 * <p>The same class is the {@code blockdev-snapshot} action ({@link #ofOverlay}):
 * the overlay is a node the caller opened already, without a backing file;
 * prepare checks it as QEMU does (not used by anyone, no backing yet, a
 * format that takes one) and appends it. Nothing is created, so an abort
 * only takes it off again and leaves it open, as it was.
 */
public final class ExternalSnapshot implements TransactionAction {
    private static final Logger LOG = LoggerFactory.getLogger(ExternalSnapshot.class);
    /** The overlay's format, found in the block layer's registry (QEMU's snapshot-sync default). */
    private static final String FORMAT = "qcow2";

    private final BlockLayer layer;
    private final BlockNode old;
    private final Path file;
    private final String nodeName;
    /** blockdev-snapshot's overlay, opened by the caller; null for blockdev-snapshot-sync. */
    private final BlockNode existingOverlay;

    private boolean legacy;
    private AioContextLock.Held heldAcrossTransaction;
    private boolean prepared;
    private DrainedSection drained;
    private BlockNode newNode;
    private boolean createdFile;
    private boolean overlayAppended;
    private boolean aborted;

    /** Snapshot {@code node} (a device's active layer) into a new qcow2 image {@code file}, opened as {@code nodeName}. */
    public ExternalSnapshot(BlockLayer layer, BlockNode node, Path file, String nodeName) {
        this.layer = layer;
        this.old = node;
        this.file = file;
        this.nodeName = nodeName;
        this.existingOverlay = null;
    }

    private ExternalSnapshot(BlockLayer layer, BlockNode node, BlockNode overlay) {
        this.layer = layer;
        this.old = node;
        this.file = null;
        this.nodeName = overlay.name();
        this.existingOverlay = overlay;
    }

    /**
     * The {@code blockdev-snapshot} action: puts {@code overlay} (an open
     * image node without a backing file and without users) on top of
     * {@code node}, whose image becomes its backing file.
     */
    public static ExternalSnapshot ofOverlay(BlockLayer layer, BlockNode node, BlockNode overlay) {
        return new ExternalSnapshot(layer, node, overlay);
    }

    public BlockNode overlay() {
        return newNode;
    }

    @Override
    public String describe() {
        if (existingOverlay != null) {
            return "blockdev-snapshot of '" + old.name() + "' with overlay '" + existingOverlay.name() + "'";
        }
        return "blockdev-snapshot-sync of '" + old.name() + "' to " + file;
    }

    private static AioContextLock.Held acquire(AioContext ctx) {
        return ctx.inHomeThread() ? null : ctx.acquire();
    }

    @Override
    public void prepare() {
        legacy = layer.loop().legacy().isOn(LegacyBehavior.SNAPSHOT_LOCK_ACROSS_TRANSACTION);
        prepared = true;
        AioContext ctx = old.context();
        AioContextLock.Held lock = acquire(ctx);
        try {
            drained = old.drainedBegin(); // paired with clean()
            prepareLocked(ctx);
        } finally {
            if (legacy) {
                heldAcrossTransaction = lock; // pre-fix: state->aio_context stays acquired until clean
            } else if (lock != null) {
                lock.close(); // every return, early or not (seed 002's "goto out")
            }
        }
    }

    private void prepareLocked(AioContext ctx) {
        if (old.isClosed()) {
            throw new BlockException("'" + old.name() + "' has no medium");
        }
        for (BlockChild e : old.parents()) {
            Job j = Job.of(e.parent());
            if (j != null) {
                throw new BlockException("'" + old.name() + "' is busy: job '" + j.id() + "' uses it");
            }
        }
        if (!old.isReadOnly()) {
            int r = old.flushSync();
            if (r < 0) {
                throw new BlockException("flushing '" + old.name() + "' failed: " + Errno.name(-r));
            }
        }
        if (existingOverlay != null) {
            checkOverlay();
            newNode = existingOverlay;
            append(ctx);
            return;
        }
        if (nodeName == null || layer.node(nodeName) != null || layer.node(nodeName + "-file") != null) {
            throw new BlockException("new snapshot node name '" + nodeName + "' is " + (nodeName == null ? "missing"
                    : "already in use"));
        }
        Path backing = Graph.imagePath(old);
        if (backing == null) {
            throw new BlockException("'" + old.name() + "' (" + old.driver().formatName()
                    + ") is not an image file; it cannot be the backing file of a snapshot");
        }
        if (Files.exists(file)) {
            throw new BlockException("snapshot file " + file + " already exists");
        }
        layer.format(FORMAT).create(file, old.length(), backing.toAbsolutePath().toString(), old.driver().formatName());
        createdFile = true;
        // the backing link is left for the append below (QEMU's BDRV_O_NO_BACKING)
        newNode = layer.openImage(nodeName, file, FORMAT, false, false);
        if (newNode.child(ChildRole.BACKING) != null || !newNode.driver().supportsBacking()) {
            throw new BlockException("the snapshot '" + nodeName + "' cannot take a backing file");
        }
        append(ctx);
    }

    /**
     * What QEMU's {@code external_snapshot_prepare} checks of a
     * blockdev-snapshot overlay, in its order and words: nobody may use it
     * yet (qsd 7.2 refuses one with any parent), it has no backing file, and
     * its format can take one.
     */
    private void checkOverlay() {
        BlockNode o = existingOverlay;
        if (o.isClosed() || layer.node(o.name()) != o) {
            throw new BlockException("Cannot find device='" + o.name() + "' nor node-name='" + o.name() + "'");
        }
        if (!o.parents().isEmpty() || o == old) {
            throw new BlockException("The overlay is already in use");
        }
        if (o.child(ChildRole.BACKING) != null) {
            throw new BlockException("The overlay already has a backing image");
        }
        if (!o.driver().supportsBacking()) {
            throw new BlockException("The overlay does not support backing images");
        }
    }

    /** QEMU's {@code bdrv_append}: the overlay moves to the old node's context, takes it as backing, replaces it. */
    private void append(AioContext ctx) {
        if (newNode.context() != ctx) {
            layer.setAioContext(newNode, ctx);
        }
        // QEMU's bdrv_append: the overlay's backing file is the old node, and it replaces the old node in its parents
        newNode.attachChild(old, "backing", ChildRole.BACKING);
        Graph.replaceNode(old, newNode);
        overlayAppended = true;
        LOG.debug("snapshot: '{}' now on top of '{}'", nodeName, old.name());
    }

    @Override
    public void commit() {
        try (AioContextLock.Held h = legacy ? null : acquire(old.context())) {
            BlockReopen.setReadOnly(old, true); // the old top is now a backing file
        }
    }

    @Override
    public void abort() {
        aborted = true;
        if (!overlayAppended) {
            return;
        }
        try (AioContextLock.Held h = legacy ? null : acquire(old.context())) {
            Graph.replaceNode(newNode, old);
            BlockChild e = newNode.childEdge(ChildRole.BACKING);
            if (e != null) {
                newNode.detachChild(e);
            }
            overlayAppended = false;
        }
    }

    @Override
    public void teardown() {
        AioContextLock.Held h = heldAcrossTransaction;
        heldAcrossTransaction = null;
        if (h != null) {
            h.close();
        }
    }

    @Override
    public void clean() {
        if (!prepared) {
            return;
        }
        AioContextLock.Held h = legacy ? heldAcrossTransaction : acquire(old.context());
        heldAcrossTransaction = null;
        try {
            if (drained != null) {
                drained.close();
                drained = null;
            }
            if (newNode != null && existingOverlay == null) {
                newNode.unref(); // the creation reference: a node appended on top lives on in its parents
                if (aborted) {
                    newNode = null;
                }
            }
        } finally {
            if (h != null) {
                h.close();
            }
        }
        if (aborted && createdFile) {
            try {
                Files.deleteIfExists(file);
            } catch (IOException e) {
                LOG.warn("could not delete the aborted snapshot file {}: {}", file, e.getMessage());
            }
        }
    }
}
