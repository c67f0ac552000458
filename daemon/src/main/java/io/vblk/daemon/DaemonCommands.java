package io.vblk.daemon;

import io.vblk.block.BlockChild;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.nio.file.Path;
import java.util.Map;

/**
 * The daemon's core QMP commands (QEMU's names and replies): {@code quit},
 * {@code blockdev-add}, {@code blockdev-del}, {@code query-named-block-nodes},
 * {@code block-export-add}, {@code block-export-del},
 * {@code query-block-exports}, {@code object-add}, {@code object-del},
 * {@code query-iothreads}, {@code x-blockdev-set-iothread}.
 */
final class DaemonCommands {
    private static final JsonNodeFactory F = JsonNodeFactory.instance;

    private DaemonCommands() {
    }

    static void register(Daemon d, QmpCommands c) {
        c.register("quit", a -> {
            a.end();
            d.requestQuit();
            return null;
        });
        c.register("blockdev-add", a -> {
            d.blockdevAdd(a);
            return null;
        });
        c.register("blockdev-del", a -> {
            String n = a.str("node-name");
            a.end();
            d.blockdevDel(n);
            return null;
        });
        c.register("query-named-block-nodes", a -> {
            a.optBool("flat", false);
            a.end();
            return d.inMainLoop("query-named-block-nodes", () -> namedNodes(d));
        });
        c.register("block-export-add", a -> {
            d.exports().add(a);
            return null;
        });
        c.register("block-export-del", a -> {
            String id = a.str("id");
            String mode = a.optEnum("mode", "safe", "safe", "hard");
            a.end();
            d.exports().delete(id, mode.equals("hard"));
            return null;
        });
        c.register("query-block-exports", a -> {
            a.end();
            ArrayNode l = F.arrayNode();
            for (Map.Entry<BlockExport, Boolean> e : d.exports().list()) {
                ObjectNode o = l.addObject();
                o.put("type", e.getKey().type());
                o.put("id", e.getKey().id());
                o.put("node-name", e.getKey().nodeName());
                o.put("shutting-down", e.getValue());
            }
            return l;
        });
        c.register("object-add", a -> {
            d.objectAdd(a);
            return null;
        });
        c.register("object-del", a -> {
            String id = a.str("id");
            a.end();
            d.objectDel(id);
            return null;
        });
        c.register("query-iothreads", a -> {
            a.end();
            ArrayNode l = F.arrayNode();
            for (Daemon.IOThreadObject o : d.iothreadObjects()) {
                ObjectNode n = l.addObject();
                n.put("id", o.id());
                n.put("thread-id", o.threadId());
                n.put("poll-max-ns", o.pollMaxNs());
                n.put("poll-grow", 0);
                n.put("poll-shrink", 0);
                n.put("aio-max-batch", 0);
            }
            return l;
        });
        c.register("x-blockdev-set-iothread", a -> {
            String node = a.str("node-name");
            JsonNode it = a.optRaw("iothread");
            boolean force = a.optBool("force", false);
            a.end();
            if (it == null || !(it.isTextual() || it.isNull())) {
                throw QmpError.generic(it == null ? "Parameter 'iothread' is missing"
                        : "Invalid parameter type for 'iothread', expected: StrOrNull");
            }
            d.setIothread(node, it.isNull() ? null : it.asText(), force);
            return null;
        });
    }

    /** {@code query-named-block-nodes}: QEMU's {@code BlockDeviceInfo} for each node, the fields vblk knows. */
    static ArrayNode namedNodes(Daemon d) {
        ArrayNode l = F.arrayNode();
        for (BlockNode n : d.layer().nodes()) {
            if (n.isClosed()) {
                continue;
            }
            ObjectNode o = l.addObject();
            Path file = n.driver().imagePath();
            String filename = file != null ? file.toString() : n.driver().formatName() + "://";
            o.put("node-name", n.name());
            o.put("drv", driverName(n));
            o.put("ro", n.isReadOnly());
            o.put("file", filename);
            o.put("encrypted", false);
            o.put("detect_zeroes", "off");
            int depth = 0;
            BlockNode b = n.child(ChildRole.BACKING);
            if (b != null) {
                Path bp = b.driver().imagePath();
                o.put("backing_file", bp != null ? bp.toString() : b.name());
            }
            for (BlockNode x = b; x != null; x = x.child(ChildRole.BACKING)) {
                depth++;
            }
            o.put("backing_file_depth", depth);
            ObjectNode cache = o.putObject("cache");
            cache.put("writeback", true);
            cache.put("direct", false);
            cache.put("no-flush", false);
            for (String k : new String[] {"bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "write_threshold"}) {
                o.put(k, 0);
            }
            ObjectNode img = o.putObject("image");
            img.put("filename", filename);
            img.put("format", driverName(n));
            img.put("virtual-size", n.length());
            img.put("dirty-flag", false);
            if (b != null && b.driver().imagePath() != null) {
                img.put("backing-filename", b.driver().imagePath().toString());
            }
            for (BlockChild ch : n.children()) {
                if (ch.role() == ChildRole.FILE) {
                    o.put("file-node", ch.node().name()); // vblk extension: the protocol child's node
                }
            }
        }
        return l;
    }

    /** QEMU's driver names ({@code null-co}, not vblk's internal "null"). */
    static String driverName(BlockNode n) {
        String f = n.driver().formatName();
        return f.equals("null") ? "null-co" : f;
    }

    static Path path(QapiArgs a, String key) {
        return Path.of(a.str(key));
    }
}
