package io.vblk.daemon;

import io.vblk.aio.IOThread;
import io.vblk.block.BlockNode;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;
import io.vblk.qmp.QmpEvent;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The daemon's exports and the export types it knows: QEMU's
 * block/export/export.c ({@code blk_exp_add}, {@code qmp_block_export_del},
 * {@code qmp_query_block_exports}, the {@code BLOCK_EXPORT_DELETED} event).
 * The options common to every export are parsed here; the rest goes to the
 * {@link ExportType} registered for {@code type}.
 */
public final class BlockExports {
    private static final Logger LOG = LoggerFactory.getLogger(BlockExports.class);

    private final ExportContext ctx;
    private final Function<String, IOThread> iothreads;
    private final QmpEvent.Sink events;
    private final Map<String, ExportType> types = new LinkedHashMap<>();
    private final Map<String, BlockExport> exports = new LinkedHashMap<>();
    /** Ids being deleted: still listed, as "shutting-down". */
    private final Map<String, BlockExport> deleting = new LinkedHashMap<>();

    public BlockExports(ExportContext ctx, Function<String, IOThread> iothreads, QmpEvent.Sink events) {
        this.ctx = ctx;
        this.iothreads = iothreads;
        this.events = events;
        register(new VhostUserBlkExport.Type());
    }

    /** Adds an export type ({@code --export type=NAME}). */
    public synchronized void register(ExportType t) {
        if (types.putIfAbsent(t.type(), t) != null) {
            throw new IllegalArgumentException("export type '" + t.type() + "' is registered twice");
        }
    }

    /** {@code block-export-add} / {@code --export}. Called off the main loop (the QMP dispatcher or start-up). */
    public BlockExport add(QapiArgs a) {
        String type = a.str("type");
        ExportType t;
        synchronized (this) {
            t = types.get(type);
        }
        if (t == null) {
            a.enumValue("type", types.keySet().toArray(new String[0]));
        }
        String id = a.str("id");
        String nodeName = a.str("node-name");
        boolean writable = a.optBool("writable", false);
        boolean writethrough = a.optBool("writethrough", false);
        String iothread = a.optStr("iothread", null);
        boolean fixed = a.optBool("fixed-iothread", false);
        synchronized (this) {
            if (exports.containsKey(id) || deleting.containsKey(id)) {
                throw QmpError.generic("Block export id '" + id + "' is already in use");
            }
        }
        if (!id.matches("[A-Za-z][A-Za-z0-9_.\\-]{0,127}")) {
            throw QmpError.generic("Invalid block export id '" + id + "'");
        }
        BlockNode node = ctx.inMainLoop("find node", () -> ctx.layer().node(nodeName));
        if (node == null) {
            throw QmpError.generic("Cannot find device='' nor node-name='" + nodeName + "'");
        }
        IOThread it = null;
        if (iothread != null) {
            it = iothreads.apply(iothread);
            if (it == null) {
                throw QmpError.generic("iothread \"" + iothread + "\" not found");
            }
        }
        BlockExport e = t.create(ctx, new BlockExportOptions(type, id, node, writable, writethrough, it, fixed), a);
        synchronized (this) {
            exports.put(id, e);
        }
        LOG.info("export '{}' added: {}", id, e.describe().split("\n")[0]);
        return e;
    }

    /**
     * {@code block-export-del}: "safe" refuses an export a client uses,
     * "hard" disconnects it. The export is gone, and
     * {@code BLOCK_EXPORT_DELETED} sent, once its requests completed and the
     * disk was flushed.
     */
    public void delete(String id, boolean hard) {
        BlockExport e;
        synchronized (this) {
            e = exports.get(id);
            if (e == null) {
                if (deleting.containsKey(id)) {
                    throw QmpError.generic("Export '" + id + "' is already shutting down");
                }
                throw QmpError.generic("Export '" + id + "' is not found");
            }
        }
        // asked outside the lock: an export may ask the main loop (commands run one at a time, so the export
        // cannot change meanwhile)
        if (!hard && e.hasClients()) {
            throw QmpError.generic("export '" + id + "' still in use (a client is connected; use mode=hard "
                    + "to disconnect it)");
        }
        synchronized (this) {
            if (exports.remove(id, e)) {
                deleting.put(id, e);
            } else {
                throw QmpError.generic("Export '" + id + "' is already shutting down");
            }
        }
        try {
            e.shutdown();
        } finally {
            synchronized (this) {
                deleting.remove(id);
            }
            ObjectNode data = JsonNodeFactory.instance.objectNode();
            data.put("id", id);
            events.emit("BLOCK_EXPORT_DELETED", data);
            LOG.info("export '{}' deleted", id);
        }
    }

    public synchronized BlockExport get(String id) {
        return exports.get(id);
    }

    /** Exports using {@code nodeName} (directly), for "in use" errors. */
    public synchronized List<BlockExport> using(String nodeName) {
        List<BlockExport> l = new ArrayList<>();
        for (BlockExport e : exports.values()) {
            if (e.nodeName().equals(nodeName)) {
                l.add(e);
            }
        }
        for (BlockExport e : deleting.values()) {
            if (e.nodeName().equals(nodeName)) {
                l.add(e);
            }
        }
        return l;
    }

    /**
     * Every export, those being deleted included ({@code query-block-exports}):
     * the newest first, as QEMU's export list (QLIST_INSERT_HEAD) has them.
     */
    public synchronized List<Map.Entry<BlockExport, Boolean>> list() {
        List<Map.Entry<BlockExport, Boolean>> l = new ArrayList<>();
        exports.values().forEach(e -> l.add(0, Map.entry(e, false)));
        deleting.values().forEach(e -> l.add(Map.entry(e, true)));
        return l;
    }

    /** At daemon shutdown: every export, last added first, hard. */
    public void shutdownAll() {
        List<String> ids;
        synchronized (this) {
            ids = new ArrayList<>(exports.keySet());
        }
        for (int i = ids.size() - 1; i >= 0; i--) {
            try {
                delete(ids.get(i), true);
            } catch (RuntimeException e) {
                LOG.error("export '{}': shutdown failed", ids.get(i), e);
            }
        }
    }
}
