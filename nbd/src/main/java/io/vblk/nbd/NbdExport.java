package io.vblk.nbd;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockNode;

import java.util.LinkedHashSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;

/**
 * One named export of the NBD server: QEMU's {@code NBDExport} (nbd/server.c)
 * as {@code block-export-add type=nbd} creates it. It owns a
 * {@link BlockBackend} on the node — the clients' requests go through it,
 * so they are range- and permission-checked, counted in flight and parked
 * while the node is drained — pinned to the node's AioContext, where every
 * client of the export runs.
 *
 * <p>The set of clients and the removal state belong to the main loop.
 */
public final class NbdExport implements NbdNegotiation.Target {
    private final String id;
    private final String name;
    private final String description;
    private final BlockNode node;
    private final BlockBackend blk;
    private final boolean writable;
    final Set<NbdClient> clients = new LinkedHashSet<>();
    private boolean removing;
    final CompletableFuture<Void> deleted = new CompletableFuture<>();

    NbdExport(String id, String name, String description, BlockNode node, BlockBackend blk, boolean writable) {
        this.id = id;
        this.name = name;
        this.description = description == null ? "" : description;
        this.node = node;
        this.blk = blk;
        this.writable = writable;
    }

    /** The export's id ({@code block-export-add id=}); the name when none was given. */
    public String id() {
        return id;
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public String description() {
        return description;
    }

    /**
     * The node the export serves now: its backend's root, which a mirror or
     * active commit pivots to the new node (QEMU's {@code blk_bs(exp->blk)}),
     * or the node it was created on once the backend let go.
     */
    public BlockNode node() {
        BlockNode r = blk.root();
        return r != null ? r : node;
    }

    BlockBackend backend() {
        return blk;
    }

    public boolean isWritable() {
        return writable;
    }

    public AioContext context() {
        return node().context();
    }

    @Override
    public long size() {
        return blk.length();
    }

    /** Connections that chose this export and have not ended yet (main loop). */
    public int clientCount() {
        return clients.size();
    }

    /** Whether {@code block-export-del} was asked and the export waits for its clients to go. */
    public boolean isRemoving() {
        return removing;
    }

    void markRemoving() {
        removing = true;
    }

    /** Completes once the last client ended and the backend let go of the node (BLOCK_EXPORT_DELETED). */
    public CompletableFuture<Void> whenDeleted() {
        return deleted;
    }

    /**
     * QEMU's {@code nbd_export_create} flags: flush and multi-conn always (a
     * flush on any connection flushes the one backend every connection
     * writes through, which is what multi-conn promises); FUA, trim,
     * write-zeroes and fast-zero only when writable; DF with structured replies.
     */
    @Override
    public int transmissionFlags(boolean structured) {
        int f = NbdProto.FLAG_HAS_FLAGS | NbdProto.FLAG_SEND_FLUSH | NbdProto.FLAG_CAN_MULTI_CONN;
        if (writable) {
            f |= NbdProto.FLAG_SEND_FUA | NbdProto.FLAG_SEND_TRIM | NbdProto.FLAG_SEND_WRITE_ZEROES
                    | NbdProto.FLAG_SEND_FAST_ZERO;
        } else {
            f |= NbdProto.FLAG_READ_ONLY;
        }
        if (structured) {
            f |= NbdProto.FLAG_SEND_DF;
        }
        return f;
    }

    @Override
    public String toString() {
        return "NBD export '" + name + "' of node '" + node.name() + "'" + (writable ? " (writable)" : " (read-only)");
    }
}
