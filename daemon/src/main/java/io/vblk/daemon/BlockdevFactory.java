package io.vblk.daemon;

import io.vblk.block.BlkDebugDriver;
import io.vblk.block.BlkDebugInjectError;
import io.vblk.block.BlockDriver;
import io.vblk.block.BlockException;
import io.vblk.block.BlockFormat;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.block.ChildRole;
import io.vblk.block.NullDriver;
import io.vblk.block.rbd.RbdDriver;
import io.vblk.block.rbd.RbdOptions;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpError;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * {@code --blockdev} / {@code blockdev-add}: QEMU's {@code bdrv_open} from a
 * {@code BlockdevOptions} tree. The whole tree (children given inline
 * included) is read and checked first — an unknown member, a bad value or a
 * setting vblk does not support yet fails before any file is opened — and
 * then built bottom-up in the main loop. Drivers: {@code file},
 * {@code null-co}, {@code raw}, {@code rbd}, {@code blkdebug} (its
 * {@code image}, {@code inject-error} rules and {@code align}: the subset
 * {@link BlkDebugInjectError} describes) and every image format of the
 * block layer's registry ({@code qcow2}). An {@code rbd} node's cluster
 * connection is made before the main loop is entered
 * ({@link #openRemote}), so a slow or unreachable cluster never stalls the
 * loop (QEMU connects inside {@code bdrv_open}, under the big lock). A child is a node name or an inline object,
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
                long offset, long size, long nullSize, boolean readZeroes, long latencyNs, RbdOptions rbd,
                BlkDebug blkdebug) {
    }

    /** A blkdebug node's rules and request alignment (0: its image's). */
    record BlkDebug(List<BlkDebugInjectError> injectErrors, int align) {
    }

    /** blkdebug's options QEMU has and vblk does not: refused by name rather than ignored. */
    private static final String[] BLKDEBUG_UNSUPPORTED = {"config", "set-state", "max-transfer", "opt-write-zero",
        "max-write-zero", "opt-discard", "max-discard", "take-child-perms", "unshare-child-perms"};

    /** Reads and checks the tree; {@code implicitName} names a node given inline (null at the root). */
    static Spec parse(QapiArgs a, BlockLayer layer, String implicitName) {
        List<String> drivers = new ArrayList<>(List.of("file", "null-co", "raw", "rbd", "blkdebug"));
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
        RbdOptions rbd = null;
        BlkDebug blkdebug = null;
        switch (driver) {
            case "file":
                file = FileOptions.parse(a, ro, common);
                break;
            case "null-co":
                nullSize = a.optSize("size", NULL_DEFAULT_SIZE);
                readZeroes = a.optBool("read-zeroes", false);
                latency = a.optInt("latency-ns", 0);
                break;
            case "rbd":
                rbd = rbdOptions(a, ro, common.cacheDirect());
                break;
            case "raw":
                fileChild = child(a, "file", layer, nodeName, false);
                offset = a.optSize("offset", 0);
                size = a.optSize("size", -1);
                break;
            case "blkdebug":
                fileChild = child(a, "image", layer, nodeName, false);
                blkdebug = blkdebugOptions(a);
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
        } else if (rbd != null) {
            checkRbdCommon(common);
        } else {
            common.checkSupportedAboveFile(driver);
        }
        if (nullSize < 0 || latency < 0) {
            throw QmpError.generic("null-co: size and latency-ns must not be negative");
        }
        return new Spec(driver, nodeName, ro, file, fileChild, backing, offset, size, nullSize, readZeroes, latency,
                rbd, blkdebug);
    }

    /**
     * QAPI's {@code BlockdevOptionsBlkdebug}: {@code inject-error} (a list;
     * on the command line {@code inject-error.0.event=…}) and {@code align};
     * the other members are refused by name.
     */
    private static BlkDebug blkdebugOptions(QapiArgs a) {
        List<BlkDebugInjectError> rules = new ArrayList<>();
        JsonNode list = a.optRaw("inject-error");
        if (list != null) {
            List<JsonNode> items = new ArrayList<>();
            if (list.isArray()) {
                list.forEach(items::add);
            } else if (list.isObject() && a.isKeyval()) {
                for (int i = 0; list.has(Integer.toString(i)); i++) {
                    items.add(list.get(Integer.toString(i)));
                }
                if (items.size() != list.size()) {
                    throw QmpError.generic("Parameter '" + a.path("inject-error") + "' expects a list");
                }
            } else {
                throw QmpError.generic("Invalid parameter type for '" + a.path("inject-error") + "', expected: array");
            }
            for (JsonNode item : items) {
                if (!item.isObject()) {
                    throw QmpError.generic("Invalid parameter type for '" + a.path("inject-error")
                            + "', expected: object");
                }
                QapiArgs r = a.isKeyval() ? QapiArgs.keyval((ObjectNode) item) : QapiArgs.json((ObjectNode) item);
                String event = r.str("event");
                long state = r.optInt("state", 0);
                String ioType = r.optStr("iotype", null);
                long errno = r.optInt("errno", BlkDebugInjectError.EIO);
                long sector = r.optInt("sector", -1);
                boolean once = r.optBool("once", false);
                boolean immediately = r.optBool("immediately", false);
                r.end();
                if (state != 0) {
                    throw QmpError.generic("blkdebug: inject-error 'state' is not supported yet by vblk");
                }
                try {
                    rules.add(new BlkDebugInjectError(event, ioType, (int) errno, sector, once, immediately));
                } catch (BlockException e) {
                    throw QmpError.generic(e.getMessage());
                }
            }
        }
        long align = a.optSize("align", 0);
        for (String k : BLKDEBUG_UNSUPPORTED) {
            a.accept(k);
            if (a.has(k)) {
                throw QmpError.generic("blkdebug: '" + k + "' is not supported yet by vblk");
            }
        }
        if (align < 0 || align > (1 << 30) || (align != 0 && Long.bitCount(align) != 1)) {
            throw QmpError.generic("Cannot meet constraints with align " + align);
        }
        return new BlkDebug(rules, (int) align);
    }

    /**
     * The common members on an rbd node: {@code cache.direct} is honoured
     * (librbd's cache off, {@link RbdOptions#cacheDirect}); the rest as for
     * every vblk node.
     */
    private static void checkRbdCommon(FileOptions.Common c) {
        if (c.cacheNoFlush()) {
            throw QmpError.generic("cache.no-flush=on is not supported yet by vblk");
        }
        if (!c.detectZeroes().equals("off")) {
            throw QmpError.generic("detect-zeroes=" + c.detectZeroes() + " is not supported yet by vblk");
        }
        if (c.discardGiven() && (c.discard().equals("ignore") || c.discard().equals("off"))) {
            throw QmpError.generic("discard=" + c.discard() + " is not supported yet by vblk: discard requests are "
                    + "always passed through (as discard=unmap)");
        }
    }

    /**
     * QAPI's {@code BlockdevOptionsRbd}, mapped onto
     * {@link RbdOptions#fromKeyValues}: pool, image, namespace, snapshot,
     * conf, user, with the node's read-only and cache.direct. The members
     * vblk has no use for yet (encryption, cephx secrets, explicit monitors)
     * are refused by name.
     */
    private static RbdOptions rbdOptions(QapiArgs a, boolean readOnly, boolean cacheDirect) {
        Map<String, String> kv = new LinkedHashMap<>();
        kv.put("pool", a.str("pool"));
        kv.put("image", a.str("image"));
        for (String k : new String[] {"namespace", "snapshot", "conf", "user", "x-rados-conf"}) {
            String v = a.optStr(k, null);
            if (v != null) {
                kv.put(k, v);
            }
        }
        for (String k : new String[] {"encrypt", "auth-client-required", "key-secret", "server"}) {
            a.accept(k);
            if (a.has(k)) {
                throw QmpError.generic("rbd: '" + k + "' is not supported by vblk (put the cluster's monitors and "
                        + "keyring in the conf file)");
            }
        }
        kv.put("read-only", readOnly ? "on" : "off");
        kv.put("cache.direct", cacheDirect ? "on" : "off");
        try {
            return RbdOptions.fromKeyValues(kv);
        } catch (BlockException e) {
            throw QmpError.generic(e.getMessage());
        }
    }

    /**
     * Opens the cluster image of every {@code rbd} node in the tree, off the
     * main loop (a cluster may take its timeouts to answer). The caller
     * passes the map to {@link #build} and closes whatever is left in it
     * afterwards ({@link #closeUnused}). On failure nothing stays open.
     */
    static Map<Spec, BlockDriver> openRemote(Spec s) {
        Map<Spec, BlockDriver> opened = new IdentityHashMap<>();
        try {
            openRemote(s, opened);
        } catch (RuntimeException e) {
            closeUnused(opened);
            if (e instanceof BlockException || e instanceof IllegalArgumentException) {
                throw QmpError.generic(e.getMessage());
            }
            throw e;
        }
        return opened;
    }

    private static void openRemote(Spec s, Map<Spec, BlockDriver> opened) {
        if (s.rbd() != null) {
            if (s.rbd().snapshot() != null && !s.readOnly()) {
                throw QmpError.generic("rbd snapshots are always read-only (node '" + s.nodeName()
                        + "': add read-only=on)");
            }
            opened.put(s, RbdDriver.open(s.rbd()));
        }
        for (Child c : new Child[] {s.fileChild(), s.backing()}) {
            if (c != null && c.inline() != null) {
                openRemote(c.inline(), opened);
            }
        }
    }

    /** Closes the drivers {@link #build} did not use (it failed before reaching them). */
    static void closeUnused(Map<Spec, BlockDriver> opened) {
        for (BlockDriver d : opened.values()) {
            d.close();
        }
        opened.clear();
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
    static BlockNode build(Spec s, BlockLayer layer, Map<Spec, BlockDriver> opened) {
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
                case "rbd": {
                    BlockDriver d = opened.get(s);
                    if (d == null) {
                        throw new IllegalStateException("rbd node '" + s.nodeName() + "' was not opened");
                    }
                    BlockNode n = layer.addNode(s.nodeName(), d, s.readOnly());
                    opened.remove(s);
                    return n;
                }
                case "blkdebug": {
                    Resolved f = resolve(s.fileChild(), layer, opened);
                    try {
                        BlockNode n = layer.openBlkDebug(s.nodeName(), f.node);
                        BlkDebugDriver d = (BlkDebugDriver) n.driver();
                        if (s.blkdebug().align() > 0) {
                            d.setAlignment(s.blkdebug().align());
                        }
                        d.addInjectErrors(s.blkdebug().injectErrors());
                        n.setReadOnly(s.readOnly() || f.node.isReadOnly());
                        return n;
                    } finally {
                        f.release();
                    }
                }
                case "raw": {
                    Resolved f = resolve(s.fileChild(), layer, opened);
                    try {
                        BlockNode n = layer.openRaw(s.nodeName(), f.node, s.offset(), s.size());
                        n.setReadOnly(s.readOnly() || f.node.isReadOnly());
                        return n;
                    } finally {
                        f.release();
                    }
                }
                default:
                    return buildFormat(s, layer, opened);
            }
        } catch (BlockException | IllegalArgumentException e) {
            throw QmpError.generic(e.getMessage());
        }
    }

    private static BlockNode buildFormat(Spec s, BlockLayer layer, Map<Spec, BlockDriver> opened) {
        BlockFormat fmt = layer.format(s.driver());
        Resolved f = resolve(s.fileChild(), layer, opened);
        Resolved b = null;
        BlockNode n = null;
        try {
            if (s.backing() != null && !s.backing().none()) {
                b = resolve(s.backing(), layer, opened);
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

    private static Resolved resolve(Child c, BlockLayer layer, Map<Spec, BlockDriver> opened) {
        if (c.inline() != null) {
            return new Resolved(build(c.inline(), layer, opened), true);
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
