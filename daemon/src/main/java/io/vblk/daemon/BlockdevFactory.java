package io.vblk.daemon;

import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockFormat;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.NullDriver;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.List;

/**
 * {@code --blockdev} / {@code blockdev-add}: QEMU's {@code bdrv_open} from a
 * {@code BlockdevOptions} tree. The whole tree (children given inline
 * included) is read and checked first — an unknown member, a bad value or a
 * setting vblk does not support yet fails before any file is opened — and
 * then built bottom-up in the main loop. Drivers: {@code file},
 * {@code null-co}, {@code raw} and every image format of the block layer's
 * registry ({@code qcow2}). A child is a node name or an inline object,
 * whose node is named after its parent ({@code disk-file}), as
 * {@code BlockLayer#openImage} does.
 */
final class BlockdevFactory {
    private static final long NULL_DEFAULT_SIZE = 1L << 30;

    private BlockdevFactory() {
    }

    /** A child reference: an existing node's name, an inline definition, or JSON null (no child). */
    record Child(String ref, Spec inline, boolean none) {
    }

    /** One node to create, checked. */
    record Spec(String driver, String nodeName, boolean readOnly, FileOptions file, Child fileChild, Child backing,
                long offset, long size, long nullSize, boolean readZeroes, long latencyNs) {
    }

    /** Reads and checks the tree; {@code implicitName} names a node given inline (null at the root). */
    static Spec parse(QapiArgs a, BlockLayer layer, String implicitName) {
        List<String> drivers = new ArrayList<>(List.of("file", "null-co", "raw"));
        layer.formats().forEach(f -> {
            if (!drivers.contains(f.name())) {
                drivers.add(f.name());
            }
        });
        String driver = a.enumValue("driver", drivers.toArray(new String[0]));
        String nodeName = a.optStr("node-name", null);
        boolean ro = a.optBool("read-only", false);
        boolean autoRo = a.optBool("auto-read-only", false);
        boolean forceShare = a.optBool("force-share", false);
        FileOptions.Common common = FileOptions.Common.parse(a);
        if (nodeName == null) {
            if (implicitName == null) {
                throw QmpError.generic("'node-name' must be specified for the root node");
            }
            nodeName = implicitName;
        }
        FileOptions file = null;
        Child fileChild = null;
        Child backing = null;
        long offset = 0;
        long size = -1;
        long nullSize = 0;
        boolean readZeroes = false;
        long latency = 0;
        switch (driver) {
            case "file":
                file = FileOptions.parse(a, ro, common);
                break;
            case "null-co":
                nullSize = a.optSize("size", NULL_DEFAULT_SIZE);
                readZeroes = a.optBool("read-zeroes", false);
                latency = a.optInt("latency-ns", 0);
                break;
            case "raw":
                fileChild = child(a, "file", layer, nodeName, false);
                offset = a.optSize("offset", 0);
                size = a.optSize("size", -1);
                break;
            default: // an image format of the registry
                fileChild = child(a, "file", layer, nodeName, false);
                backing = a.has("backing") ? child(a, "backing", layer, nodeName, true) : null;
                break;
        }
        a.end();
        if (autoRo) {
            throw QmpError.generic("auto-read-only=on is not supported yet by vblk");
        }
        if (forceShare) {
            throw QmpError.generic("force-share=on is not supported yet by vblk");
        }
        if (file != null) {
            file.checkSupported();
        } else {
            common.checkSupportedAboveFile(driver);
        }
        if (nullSize < 0 || latency < 0) {
            throw QmpError.generic("null-co: size and latency-ns must not be negative");
        }
        return new Spec(driver, nodeName, ro, file, fileChild, backing, offset, size, nullSize, readZeroes, latency);
    }

    private static Child child(QapiArgs a, String key, BlockLayer layer, String parent, boolean nullable) {
        JsonNode v = a.optRaw(key);
        if (v == null) {
            throw QmpError.generic("Parameter '" + a.path(key) + "' is missing");
        }
        if (v.isNull() && nullable) {
            return new Child(null, null, true);
        }
        if (v.isTextual()) {
            return new Child(v.asText(), null, false);
        }
        if (v.isObject()) {
            QapiArgs c = a.isKeyval() ? QapiArgs.keyval((ObjectNode) v) : QapiArgs.json((ObjectNode) v);
            try {
                return new Child(null, parse(c, layer, parent + "-" + key), false);
            } catch (QmpError e) {
                throw QmpError.generic(e.desc().replace("Parameter '", "Parameter '" + a.path(key) + "."));
            }
        }
        throw QmpError.generic("Invalid parameter type for '" + a.path(key) + "', expected: "
                + (nullable ? "BlockdevRefOrNull" : "BlockdevRef"));
    }

    /**
     * Creates the nodes of {@code s}, children first. Main loop. Returns the
     * new node holding its creation reference; on failure nothing created is
     * left behind.
     */
    static BlockNode build(Spec s, BlockLayer layer) {
        if (layer.node(s.nodeName()) != null) {
            throw QmpError.generic("Duplicate nodes with node-name='" + s.nodeName() + "'");
        }
        try {
            switch (s.driver()) {
                case "file":
                    return layer.openFile(s.nodeName(), s.file().filename(), s.file().toDriverOptions());
                case "null-co": {
                    BlockNode n = layer.openNull(s.nodeName(), new NullDriver.Options(s.nullSize(), s.readZeroes(),
                            s.latencyNs()));
                    n.setReadOnly(s.readOnly());
                    return n;
                }
                case "raw": {
                    Resolved f = resolve(s.fileChild(), layer);
                    try {
                        BlockNode n = layer.openRaw(s.nodeName(), f.node, s.offset(), s.size());
                        n.setReadOnly(s.readOnly() || f.node.isReadOnly());
                        return n;
                    } finally {
                        f.release();
                    }
                }
                default:
                    return buildFormat(s, layer);
            }
        } catch (BlockException | IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
    }

    private static BlockNode buildFormat(Spec s, BlockLayer layer) {
        BlockFormat fmt = layer.format(s.driver());
        Resolved f = resolve(s.fileChild(), layer);
        Resolved b = null;
        BlockNode n = null;
        try {
            if (s.backing() != null && !s.backing().none()) {
                b = resolve(s.backing(), layer);
            }
            BlockDriver d = fmt.open(layer, s.nodeName(), f.node, s.readOnly());
            n = layer.addNode(s.nodeName(), d, s.readOnly());
            n.attachChild(f.node, "file", ChildRole.FILE);
            if (s.backing() == null) {
                fmt.afterOpen(layer, n, s.readOnly()); // the backing file the image names, opened read-only
            } else if (b != null) {
                if (!n.driver().supportsBacking()) {
                    throw QmpError.generic("Driver '" + s.driver() + "' of node '" + s.nodeName()
                            + "' does not support backing files");
                }
                n.attachChild(b.node, "backing", ChildRole.BACKING);
            }
            return n;
        } catch (RuntimeException e) {
            if (n != null && !n.isClosed()) {
                n.unref();
            }
            throw e;
        } finally {
            f.release();
            if (b != null) {
                b.release();
            }
        }
    }

    /** A child node and whether this call created it (then its creation reference is dropped once attached). */
    private record Resolved(BlockNode node, boolean created) {
        void release() {
            if (created && !node.isClosed()) {
                node.unref();
            }
        }
    }

    private static Resolved resolve(Child c, BlockLayer layer) {
        if (c.inline() != null) {
            return new Resolved(build(c.inline(), layer), true);
        }
        BlockNode n = layer.node(c.ref());
        if (n == null) {
            throw QmpError.generic("Cannot find device='" + c.ref() + "' nor node-name='" + c.ref() + "'");
        }
        if (!n.context().isMain()) {
            throw QmpError.generic("node '" + c.ref() + "' is served from an IOThread; vblk adds parents only to "
                    + "nodes in the main loop (move it with x-blockdev-set-iothread first)");
        }
        return new Resolved(n, false);
    }
}
