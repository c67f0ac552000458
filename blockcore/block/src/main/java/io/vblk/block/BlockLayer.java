package io.vblk.block;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.LegacyBehavior;
import io.vblk.aio.MainLoop;

import com.sun.jna.Memory;

import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The block graph of one machine and its global operations: opening nodes
 * and images, moving a graph between event loops ({@code bdrv_set_aio_context}),
 * and the migration hand-off ({@code bdrv_inactivate_all}). Graph operations
 * run in the main loop; they acquire each foreign context they touch exactly
 * once, so no wait ever runs under a recursively held lock.
 */
public final class BlockLayer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(BlockLayer.class);
    private static final Pattern NODE_NAME = Pattern.compile("[A-Za-z][A-Za-z0-9_.\\-]{0,126}");

    private final MainLoop loop;
    private final Map<String, BlockNode> nodes = new LinkedHashMap<>();
    private final List<BlockBackend> backends = new CopyOnWriteArrayList<>();
    private final List<BlockFormat> formats = new CopyOnWriteArrayList<>();
    private final AutoCloseable diagnostics;
    private volatile FileOptions fileDefaults = FileOptions.defaults();

    public BlockLayer(MainLoop loop) {
        this.loop = loop;
        BlockDriverRegistry.formats().forEach(this::registerFormat);
        diagnostics = loop.addDiagnostics("block layer", this::describe);
    }

    public MainLoop loop() {
        return loop;
    }

    /** Adds an image format; probing prefers the most confident format. */
    public void registerFormat(BlockFormat f) {
        formats.add(0, f);
    }

    public BlockFormat format(String name) {
        for (BlockFormat f : formats) {
            if (f.name().equals(name)) {
                return f;
            }
        }
        List<String> known = new ArrayList<>();
        formats.forEach(f -> known.add(f.name()));
        throw new BlockException("unknown image format '" + name + "' (known: " + String.join(", ", known) + ")");
    }

    // ------------------------------------------------------------------ nodes

    /** Adds a node in the main context; its name must be unique. */
    public BlockNode addNode(String name, BlockDriver driver, boolean readOnly) {
        checkNodeName(name);
        synchronized (nodes) {
            if (nodes.containsKey(name)) {
                throw new BlockException("a node named '" + name + "' already exists");
            }
            BlockNode n = new BlockNode(this, name, driver, loop.context(), readOnly);
            nodes.put(name, n);
            return n;
        }
    }

    private static void checkNodeName(String name) {
        if (name == null || !NODE_NAME.matcher(name).matches()) {
            throw new BlockException("invalid node name '" + name + "': use a letter, then letters, digits, '-', '.', '_'");
        }
    }

    void forget(BlockNode n) {
        synchronized (nodes) {
            nodes.remove(n.name(), n);
        }
    }

    public BlockNode node(String name) {
        synchronized (nodes) {
            return nodes.get(name);
        }
    }

    public List<BlockNode> nodes() {
        synchronized (nodes) {
            return new ArrayList<>(nodes.values());
        }
    }

    /**
     * The {@link FileOptions} a file node gets when the caller names none
     * (an image opened by path, a backing file a format opens): the
     * machine-wide {@code -blockdev driver=file} settings ({@code vblk serve
     * --aio ... --cache-direct}). Only {@code read-only} is taken from the open.
     */
    public void setFileDefaults(FileOptions o) {
        fileDefaults = java.util.Objects.requireNonNull(o);
    }

    public FileOptions fileDefaults() {
        return fileDefaults;
    }

    public BlockNode openFile(String name, Path path, boolean readOnly) {
        return openFile(name, path, fileDefaults.withReadOnly(readOnly));
    }

    /** A {@code file} node over {@code path} with explicit options (QEMU's {@code -blockdev driver=file,...}). */
    public BlockNode openFile(String name, Path path, FileOptions options) {
        FileDriver d = FileDriver.open(path, options, loop.threadPool());
        try {
            return addNode(name, d, options.readOnly());
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
    }

    /**
     * The registered protocol whose "NAME:" prefix starts {@code filename}, or
     * null for a host path: QEMU's {@code bdrv_find_protocol}. As there, a
     * prefix counts only before the first '/', so "./rbd:x" is a file.
     */
    public static BlockProtocol findProtocol(String filename) {
        int colon = filename.indexOf(':');
        int slash = filename.indexOf('/');
        if (colon <= 0 || (slash >= 0 && slash < colon)) {
            return null;
        }
        String prefix = filename.substring(0, colon);
        for (BlockProtocol p : BlockDriverRegistry.protocols()) {
            if (p.name().equals(prefix)) {
                return p;
            }
        }
        return null;
    }

    /** A protocol node for {@code filename}: a registered protocol's ("rbd:pool/image") or a host file's. */
    public BlockNode openProtocol(String name, String filename, boolean readOnly) {
        BlockProtocol p = findProtocol(filename);
        if (p == null) {
            return openFile(name, Path.of(filename), readOnly);
        }
        checkNodeName(name);
        BlockDriver d = p.open(filename, readOnly);
        try {
            return addNode(name, d, readOnly);
        } catch (RuntimeException e) {
            d.close();
            throw e;
        }
    }

    public BlockNode openNull(String name, NullDriver.Options o) {
        return addNode(name, new NullDriver(o), false);
    }

    /** A raw node over {@code file} (which it takes a reference to), optionally a window of it. */
    public BlockNode openRaw(String name, BlockNode file, long offset, long size) {
        if (offset < 0 || (size >= 0 && offset + size > file.length())) {
            throw new BlockException("raw window " + offset + "+" + size + " exceeds '" + file.name() + "' ("
                    + file.length() + " bytes)");
        }
        BlockNode n = addNode(name, new RawDriver(offset, size), file.isReadOnly());
        n.attachChild(file, "file", ChildRole.FILE);
        return n;
    }

    /** An error-injection filter over {@code child}; configure it through {@code (BlkDebugDriver) node.driver()}. */
    public BlockNode openBlkDebug(String name, BlockNode child) {
        BlockNode n = addNode(name, new BlkDebugDriver(), child.isReadOnly());
        n.attachChild(child, "image", ChildRole.FILTERED);
        return n;
    }

    /**
     * Opens an image file as a format node over a file node: the format is
     * probed from the first sector unless given. Main loop only.
     */
    public BlockNode openImage(String name, Path path, String format, boolean readOnly) {
        return openImage(name, path, format, readOnly, true);
    }

    /**
     * As {@link #openImage(String, Path, String, boolean)}; with
     * {@code openBacking} false the format's further children (the backing
     * file its header names) are left unopened, for a caller that attaches
     * the backing node itself: QEMU's {@code BDRV_O_NO_BACKING}.
     */
    public BlockNode openImage(String name, Path path, String format, boolean readOnly, boolean openBacking) {
        return openImage(name, path, format, fileDefaults.withReadOnly(readOnly), openBacking);
    }

    /**
     * As {@link #openImage(String, Path, String, boolean, boolean)}, the
     * image's file node opened with {@code fileOptions} (read-only from them).
     */
    public BlockNode openImage(String name, Path path, String format, FileOptions fileOptions, boolean openBacking) {
        checkMainLoop("open an image");
        checkNodeName(name);
        boolean readOnly = fileOptions.readOnly();
        // a "rbd:" (or other registered protocol) name is not a host file: its protocol opens it
        BlockNode file = findProtocol(path.toString()) != null
                ? openProtocol(name + "-file", path.toString(), readOnly)
                : openFile(name + "-file", path, fileOptions);
        try {
            BlockFormat f = format == null ? probe(file) : format(format);
            BlockDriver d = f.open(this, name, file, readOnly);
            BlockNode n = addNode(name, d, readOnly);
            n.attachChild(file, "file", ChildRole.FILE);
            file.unref(); // the format node holds the file now
            try {
                if (openBacking) {
                    f.afterOpen(this, n, readOnly);
                }
            } catch (RuntimeException e) {
                n.unref(); // closes the format node, and with it the file
                throw e;
            }
            return n;
        } catch (RuntimeException e) {
            if (!file.isClosed() && file.parents().isEmpty()) {
                file.unref();
            }
            throw e;
        }
    }

    /** The most confident format for the node's first sector. */
    public BlockFormat probe(BlockNode file) {
        byte[] head = new byte[512];
        long n = Math.min(head.length, file.length());
        if (n > 0) {
            Memory m = new Memory(head.length);
            IoVec v = new IoVec(1);
            v.add(Memory.nativeValue(m), (int) n);
            int ret = file.preadSync(0, n, v);
            if (ret < 0) {
                throw new BlockException("cannot read '" + file.name() + "' to probe its format: errno " + -ret);
            }
            m.read(0, head, 0, (int) n);
        }
        BlockFormat best = RawFormat.INSTANCE;
        int score = 0;
        for (BlockFormat f : formats) {
            int s = f.probe(head);
            if (s > score) {
                score = s;
                best = f;
            }
        }
        return best;
    }

    public BlockBackend newBackend(String name) {
        for (BlockBackend b : backends) {
            if (b.name().equals(name)) {
                throw new BlockException("a backend named '" + name + "' already exists");
            }
        }
        BlockBackend b = new BlockBackend(this, name);
        backends.add(b);
        return b;
    }

    public void removeBackend(BlockBackend b) {
        b.detach();
        backends.remove(b);
    }

    public List<BlockBackend> backends() {
        return List.copyOf(backends);
    }

    // ------------------------------------------------------------------ context moves

    /**
     * Moves {@code node} and every node connected to it, with their backends
     * and jobs, to {@code newCtx}: QEMU's {@code bdrv_set_aio_context}.
     *
     * <ol>
     * <li>The outside parents (backends, jobs) stop submitting for the whole move.</li>
     * <li>The node is drained: nothing is in flight.</li>
     * <li>The old context is quiesced: polled without blocking until it makes
     *     no progress, so BHs scheduled there (a completion notification, a
     *     driver's deferred work) run before the node leaves (seed 001).</li>
     * <li>Every node is detached from the old context and attached to the new one.</li>
     * <li>The parents resume, now in the new context.</li>
     * </ol>
     * Main loop only; refused with a {@link BlockException} when a parent pins the graph.
     */
    public void setAioContext(BlockNode node, AioContext newCtx) {
        checkMainLoop("move a node between AioContexts");
        AioContext old = node.context();
        if (old == newCtx) {
            return;
        }
        Set<BlockNode> comp = component(node);
        List<BlockChild> outside = new ArrayList<>();
        for (BlockNode n : comp) {
            if (n.context() != old) {
                throw new IllegalStateException("graph of '" + node.name() + "' spans AioContexts " + old.name() + " and "
                        + n.context().name());
            }
            for (BlockChild p : n.parents()) {
                if (!(p.parent() instanceof BlockNode)) {
                    outside.add(p);
                }
            }
        }
        for (BlockChild p : outside) {
            String why = p.parent().cannotSetAioContext(p, newCtx);
            if (why != null) {
                throw new BlockException("cannot move node '" + node.name() + "' to AioContext '" + newCtx.name() + "': "
                        + why);
            }
        }
        LOG.debug("bdrv_set_aio_context node={} {} -> {}", node.name(), old.name(), newCtx.name());
        try (AioContextLock.Held oldLock = ownIfForeign(old)) {
            for (BlockChild p : outside) {
                p.parentQuiesceCount++;
                p.parent().childDrainedBegin(p);
            }
            try {
                node.drain();
                if (!loop.legacy().isOn(LegacyBehavior.NO_BH_QUIESCE_ON_DETACH)) {
                    while (old.poll(false)) {
                        // run the old context's pending bottom halves before leaving it
                    }
                }
                for (BlockChild p : outside) {
                    p.parent().childDetachAioContext(p);
                }
                for (BlockNode n : comp) {
                    n.detachAioContext();
                }
                try (AioContextLock.Held newLock = ownIfForeign(newCtx)) {
                    for (BlockNode n : comp) {
                        n.attachAioContext(newCtx);
                    }
                    for (BlockChild p : outside) {
                        p.parent().childAioContextChanged(p, newCtx);
                    }
                }
            } finally {
                try (AioContextLock.Held newLock = ownIfForeign(node.context())) {
                    for (BlockChild p : outside) {
                        p.parentQuiesceCount--;
                        p.parent().childDrainedEnd(p);
                    }
                }
            }
        }
        if (LOG.isTraceEnabled()) {
            LOG.trace("aio_context_switch node={} now in {}", node.name(), newCtx.name());
        }
    }

    /** Every node reachable through child and node-parent edges. */
    static Set<BlockNode> component(BlockNode start) {
        Set<BlockNode> seen = new LinkedHashSet<>();
        Deque<BlockNode> todo = new ArrayDeque<>();
        todo.add(start);
        while (!todo.isEmpty()) {
            BlockNode n = todo.poll();
            if (!seen.add(n)) {
                continue;
            }
            todo.addAll(n.childNodes());
            for (BlockChild p : n.parents()) {
                if (p.parent() instanceof BlockNode) {
                    todo.add((BlockNode) p.parent());
                }
            }
        }
        return seen;
    }

    /** Acquires {@code ctx} once if the caller is not its home thread; null (nothing to release) otherwise. */
    private static AioContextLock.Held ownIfForeign(AioContext ctx) {
        return ctx.inHomeThread() ? null : ctx.acquire();
    }

    // ------------------------------------------------------------------ migration hand-off

    /**
     * Flushes and inactivates every node, parents before children: QEMU's
     * {@code bdrv_inactivate_all}. Each distinct AioContext is acquired exactly
     * once (seed 003): the flushes wait with {@code pollWhile}, which releases
     * the lock once, so a context acquired once per node would stay locked and
     * the IOThread could never complete the flush. Returns 0 or the first -errno.
     */
    public int inactivateAll() {
        checkMainLoop("inactivate all nodes");
        List<BlockNode> order = topDown();
        boolean perNode = loop.legacy().isOn(LegacyBehavior.RECURSIVE_LOCK_IN_INACTIVATE_ALL);
        Deque<AioContextLock.Held> held = new ArrayDeque<>();
        Set<AioContext> acquired = new LinkedHashSet<>();
        try {
            for (BlockNode n : order) {
                AioContext c = n.context();
                if (c.inHomeThread()) {
                    continue;
                }
                if (perNode || acquired.add(c)) {
                    held.push(c.acquire());
                }
            }
            for (BlockNode n : order) {
                int ret = n.inactivate();
                if (ret < 0) {
                    LOG.error("inactivating node '{}' failed: errno {}", n.name(), -ret);
                    return ret;
                }
            }
            return 0;
        } finally {
            while (!held.isEmpty()) {
                held.pop().close();
            }
        }
    }

    /** Makes every node writable again after {@link #inactivateAll()} (the destination's activation). */
    public int activateAll() {
        checkMainLoop("activate all nodes");
        List<BlockNode> order = topDown();
        for (int i = order.size() - 1; i >= 0; i--) { // children first: a format re-reads its file
            BlockNode n = order.get(i);
            try (AioContextLock.Held h = ownIfForeign(n.context())) {
                int ret = n.activate();
                if (ret < 0) {
                    return ret;
                }
            }
        }
        return 0;
    }

    /** Nodes ordered so that every node comes before its children. */
    List<BlockNode> topDown() {
        List<BlockNode> all = nodes();
        List<BlockNode> out = new ArrayList<>();
        Set<BlockNode> done = new LinkedHashSet<>();
        for (BlockNode n : all) {
            visitTopDown(n, done, out);
        }
        return out;
    }

    private void visitTopDown(BlockNode n, Set<BlockNode> done, List<BlockNode> out) {
        if (done.contains(n)) {
            return;
        }
        for (BlockChild p : n.parents()) {
            if (p.parent() instanceof BlockNode) {
                visitTopDown((BlockNode) p.parent(), done, out);
            }
        }
        if (done.add(n)) {
            out.add(n);
        }
    }

    private void checkMainLoop(String what) {
        if (!loop.context().inHomeThread()) {
            throw new IllegalStateException("cannot " + what + " from thread '" + Thread.currentThread().getName()
                    + "': graph operations run in the main loop");
        }
    }

    public String describe() {
        StringBuilder sb = new StringBuilder();
        for (BlockBackend b : backends) {
            sb.append(b.describe()).append('\n');
        }
        for (BlockNode n : nodes()) {
            sb.append(n.describe()).append('\n');
        }
        return sb.toString();
    }

    public Collection<BlockFormat> formats() {
        return List.copyOf(formats);
    }

    @Override
    public void close() {
        try {
            diagnostics.close();
        } catch (Exception e) {
            LOG.debug("removing diagnostics failed", e);
        }
    }
}
