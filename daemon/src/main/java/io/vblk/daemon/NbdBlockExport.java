package io.vblk.daemon;

import io.vblk.aio.AioContext;
import io.vblk.block.BlockException;
import io.vblk.block.BlockNode;
import io.vblk.nbd.NbdException;
import io.vblk.nbd.NbdExport;
import io.vblk.nbd.NbdServer;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code --export type=nbd} / {@code block-export-add type=nbd}: QEMU's NBD
 * export (nbd/server.c {@code nbd_export_create}, driver
 * {@code blk_exp_nbd}) on the daemon's one NBD server
 * ({@link DaemonNbdServer}). The NBD module serves the protocol; this class
 * maps the daemon's export options and lifecycle onto
 * {@link NbdServer#addExport} and {@link NbdServer#removeExportById}. The
 * node keeps its AioContext, or is moved first to {@code iothread=} when
 * one is named (QEMU's {@code blk_exp_add}); each connection's requests run
 * there.
 */
final class NbdBlockExport implements BlockExport {
    private static final Logger LOG = LoggerFactory.getLogger(NbdBlockExport.class);
    static final String TYPE = "nbd";

    private final String id;
    private final ExportContext ctx;
    private final NbdServer server;
    private final NbdExport export;
    /** Whether this export moved the node to its IOThread (it goes home on delete then). */
    private final boolean moved;
    private final AtomicBoolean shutDown = new AtomicBoolean();

    /** The {@link ExportType} of NBD exports; they need {@code --nbd-server} / {@code nbd-server-start} first. */
    static final class Type implements ExportType {
        private final DaemonNbdServer servers;

        Type(DaemonNbdServer servers) {
            this.servers = servers;
        }

        @Override
        public String type() {
            return TYPE;
        }

        @Override
        public BlockExport create(ExportContext ctx, BlockExportOptions common, QapiArgs args) {
            String name = args.optStr("name", common.node().name());
            String description = args.optStr("description", null);
            List<String> bitmaps = args.has("bitmaps") ? args.optStrList("bitmaps") : List.of();
            boolean allocationDepth = args.optBool("allocation-depth", false);
            args.end();
            if (!bitmaps.isEmpty()) {
                throw QmpError.generic("bitmaps are not supported by vblk's NBD exports (vblk has no dirty bitmaps "
                        + "to export)");
            }
            if (allocationDepth) {
                throw QmpError.generic("allocation-depth=on is not supported by vblk's NBD exports (only the "
                        + "base:allocation meta context)");
            }
            if (common.writethrough()) {
                throw QmpError.generic("writethrough=on is not supported yet by vblk's exports");
            }
            if (description != null && description.length() > 4096) {
                throw QmpError.generic("description '" + description.substring(0, 16) + "...' too long");
            }
            NbdServer s = servers.server();
            if (s == null) {
                throw QmpError.generic("NBD server not running");
            }
            return ctx.inMainLoop("block-export-add " + common.id(), () -> create(ctx, s, common, name, description));
        }

        /** Main loop: the node moved if asked, then exported; nothing is left behind on failure. */
        private static NbdBlockExport create(ExportContext ctx, NbdServer s, BlockExportOptions o, String name,
                                             String description) {
            BlockNode node = o.node();
            if (s.export(name) != null) {
                throw QmpError.generic("NBD server already has export named '" + name + "'");
            }
            if (o.writable() && node.isReadOnly()) {
                throw QmpError.generic("Cannot export node '" + node.name() + "' writable: it is read-only");
            }
            boolean moved = false;
            if (o.iothread() != null && node.context() != o.iothread().context()) {
                if (!node.context().isMain() && o.fixedIothread()) {
                    throw QmpError.generic("Cannot change iothread of active block backend");
                }
                try {
                    ctx.layer().setAioContext(node, o.iothread().context());
                } catch (BlockException | IllegalStateException e) {
                    throw QmpError.generic(e.getMessage());
                }
                moved = true;
            }
            try {
                NbdExport e = s.addExport(o.id(), name, description, node, o.writable());
                return new NbdBlockExport(o.id(), ctx, s, e, moved);
            } catch (NbdException | BlockException e) {
                if (moved && !node.isClosed() && node.parents().isEmpty()) {
                    ctx.layer().setAioContext(node, ctx.loop().context());
                }
                throw QmpError.generic(e.getMessage());
            }
        }
    }

    private NbdBlockExport(String id, ExportContext ctx, NbdServer server, NbdExport export, boolean moved) {
        this.id = id;
        this.ctx = ctx;
        this.server = server;
        this.export = export;
        this.moved = moved;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public String nodeName() {
        return export.node().name();
    }

    @Override
    public AioContext context() {
        return export.context();
    }

    /** The export name clients ask for ({@code nbd+unix:///NAME}). */
    String name() {
        return export.name();
    }

    /** An NBD connection holds the export (QEMU's per-client {@code blk_exp_ref}): mode=safe refuses it. */
    @Override
    public boolean hasClients() {
        return ctx.inMainLoop("nbd export clients", export::clientCount) > 0;
    }

    /**
     * Hard removal from the server: connections closed, their last requests
     * completed, the backend released (the future completes then), and the
     * node moved home if this export had moved it.
     */
    @Override
    public void shutdown() {
        if (!shutDown.compareAndSet(false, true)) {
            return;
        }
        CompletableFuture<Void> f = ctx.inMainLoop("block-export-del " + id, () -> {
            if (export.isRemoving()) {
                return export.whenDeleted();
            }
            return server.removeExportById(id, true);
        });
        try {
            f.get(Daemon.MAIN_LOOP_BOUND.toSeconds(), TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            LOG.error("export '{}': releasing the node failed", id, e.getCause());
        } catch (TimeoutException e) {
            LOG.error("export '{}': its connections did not end within {}: {}", id, Daemon.MAIN_LOOP_BOUND,
                    ctx.inMainLoop("describe", server::describe));
            throw QmpError.generic("export '" + id + "': its connections did not end within "
                    + Daemon.MAIN_LOOP_BOUND.toSeconds() + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw QmpError.generic("export '" + id + "': interrupted while deleting");
        }
        if (moved) {
            ctx.inMainLoop("export " + id + " node home", () -> {
                BlockNode n = export.node();
                if (!n.isClosed() && !n.context().isMain() && n.parents().isEmpty()) {
                    ctx.layer().setAioContext(n, ctx.loop().context());
                }
                return null;
            });
        }
    }

    @Override
    public String describe() {
        return "export '" + id + "' (nbd '" + export.name() + "' on " + server.address() + ", node '" + nodeName()
                + "'" + (export.isWritable() ? ", writable" : "") + ")";
    }
}
