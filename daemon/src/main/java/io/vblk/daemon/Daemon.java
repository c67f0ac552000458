package io.vblk.daemon;

import io.vblk.aio.AioContext;
import io.vblk.aio.IOThread;
import io.vblk.aio.LegacySwitches;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockChild;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;
import io.vblk.job.BlockJobs;
import io.vblk.job.Job;
import io.vblk.qmp.QapiArgs;
import io.vblk.qmp.QmpCommands;
import io.vblk.qmp.QmpDispatcher;
import io.vblk.qmp.QmpError;
import io.vblk.qmp.QmpEvent;
import io.vblk.qmp.QmpServer;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The object model of {@code vblk daemon}: what qemu-storage-daemon keeps
 * in its QOM tree and block layer — IOThread objects, block nodes the user
 * created (QEMU's "monitor-owned" nodes), exports, QMP monitors and block
 * jobs — around one {@link MainLoop} and one {@link BlockLayer}. Command
 * line options and QMP commands both end up in the methods here.
 *
 * <h2>Threads</h2>
 * QMP commands are run one at a time by a dispatcher thread (QEMU runs them
 * in the main loop under the big lock; here the single dispatcher is that
 * lock). Each graph change runs in the main loop ({@link #inMainLoop});
 * operations that wait on the main loop themselves — starting and closing a
 * vhost-user server — run from the dispatcher, never from the loop.
 *
 * <h2>Stopping</h2>
 * {@link #close()}: jobs cancelled, exports shut down (clients disconnected,
 * requests drained, disks flushed, sockets removed), then the nodes the user
 * created released (flushed and closed), IOThreads stopped, monitors closed
 * and their sockets removed.
 */
public final class Daemon implements ExportContext, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(Daemon.class);
    static final Pattern ID = Pattern.compile("[A-Za-z][A-Za-z0-9_.\\-]*");
    /** Bound for one main-loop task; a command that exceeds it is a hang, dumped by the watchdog. */
    static final Duration MAIN_LOOP_BOUND = Duration.ofSeconds(120);

    private final MainLoop loop;
    private final BlockLayer layer;
    private final BlockJobs jobs;
    private final BlockExports exports;
    private final DaemonNbdServer nbd;
    private final QmpCommands commands = new QmpCommands();
    private final QmpDispatcher dispatcher;
    private final ExecutorService qmpThread;
    private QmpServer qmp;
    private final Map<String, IOThreadObject> iothreads = new LinkedHashMap<>();
    private IOThread defaultIothread;
    private final Set<String> monitorOwned = new LinkedHashSet<>();
    private final Map<String, Path> chardevs = new LinkedHashMap<>();
    private final CountDownLatch quit = new CountDownLatch(1);
    private volatile boolean closed;
    private volatile java.util.function.Function<String, io.vblk.vhost.VhostUserEvents> vhostUserEvents;

    /** An {@code -object iothread}: the IOThread and the properties QMP reports. */
    public record IOThreadObject(String id, IOThread thread, long pollMaxNs, long threadId) {
    }

    public Daemon(String version) {
        this.loop = new MainLoop("vblk-daemon", new LegacySwitches());
        this.layer = new BlockLayer(loop);
        this.jobs = new BlockJobs(layer);
        this.exports = new BlockExports(this, this::iothread, this::emit);
        this.nbd = new DaemonNbdServer(this);
        exports.register(new NbdBlockExport.Type(nbd));
        this.dispatcher = new QmpDispatcher(commands, versionInfo(version));
        this.qmpThread = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "qmp-dispatcher");
            t.setDaemon(true);
            return t;
        });
        DaemonCommands.register(this, commands);
        JobCommands.register(this, commands);
        SnapshotCommands.register(this, commands);
        DriveMirrorCommand.register(this, commands);
        nbd.register(commands);
        ResizeCommands.register(this, commands);
    }

    /** {@code query-version}: vblk speaks QEMU 7.2's QMP; the package names vblk. */
    private static ObjectNode versionInfo(String version) {
        ObjectNode v = JsonNodeFactory.instance.objectNode();
        ObjectNode q = v.putObject("qemu");
        q.put("micro", 0);
        q.put("minor", 2);
        q.put("major", 7);
        v.put("package", "vblk " + version);
        return v;
    }

    // ------------------------------------------------------------------ accessors

    @Override
    public MainLoop loop() {
        return loop;
    }

    @Override
    public BlockLayer layer() {
        return layer;
    }

    public BlockJobs jobs() {
        return jobs;
    }

    public BlockExports exports() {
        return exports;
    }

    /** The NBD server ({@code --nbd-server}, {@code nbd-server-start}). */
    DaemonNbdServer nbd() {
        return nbd;
    }

    public QmpDispatcher dispatcher() {
        return dispatcher;
    }

    void emit(String name, ObjectNode data) {
        QmpServer s = qmp;
        if (s != null) {
            s.emit(name, data);
        }
    }

    @Override
    public <T> T inMainLoop(String what, Callable<T> task) {
        if (loop.context().inHomeThread()) {
            try {
                return task.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        return loop.watchdog(MAIN_LOOP_BOUND).call(what, task);
    }

    void run(String what, Runnable r) {
        inMainLoop(what, () -> {
            r.run();
            return null;
        });
    }

    // ------------------------------------------------------------------ iothreads

    /**
     * Lets a caller hear of every vhost-user export's front-end events
     * ({@code vblk serve} prints them); set before the exports are added.
     */
    public void setVhostUserEvents(java.util.function.Function<String, io.vblk.vhost.VhostUserEvents> f) {
        vhostUserEvents = f;
    }

    @Override
    public io.vblk.vhost.VhostUserEvents vhostUserEvents(String exportId) {
        java.util.function.Function<String, io.vblk.vhost.VhostUserEvents> f = vhostUserEvents;
        return f == null ? null : f.apply(exportId);
    }

    @Override
    public synchronized IOThread iothread(String id) {
        IOThreadObject o = iothreads.get(id);
        return o == null ? null : o.thread();
    }

    public synchronized List<IOThreadObject> iothreadObjects() {
        return new ArrayList<>(iothreads.values());
    }

    @Override
    public synchronized IOThread defaultIothread() {
        if (defaultIothread == null) {
            defaultIothread = loop.newIOThread("vblk-export-io");
        }
        return defaultIothread;
    }

    /** {@code --object} / {@code object-add}: only {@code iothread} objects exist in vblk. */
    public void objectAdd(QapiArgs a) {
        a.enumValue("qom-type", "iothread");
        String id = a.str("id");
        long pollMaxNs = a.optInt("poll-max-ns", AioContext.DEFAULT_POLL_MAX_NS);
        long grow = a.optInt("poll-grow", 0);
        long shrink = a.optInt("poll-shrink", 0);
        long batch = a.optInt("aio-max-batch", 0);
        a.end();
        if (grow != 0 || shrink != 0 || batch != 0) {
            throw QmpError.generic("poll-grow, poll-shrink and aio-max-batch are not supported yet by vblk's "
                    + "IOThreads (leave them 0)");
        }
        if (pollMaxNs < 0) {
            throw QmpError.generic("Property iothread.poll-max-ns doesn't take value " + pollMaxNs);
        }
        if (!ID.matcher(id).matches() || id.equals("vblk-export-io")) {
            throw QmpError.generic("Parameter 'id' expects an identifier");
        }
        synchronized (this) {
            if (iothreads.containsKey(id)) {
                throw QmpError.generic("attempt to add duplicate property '" + id + "' to object (type 'container')");
            }
            IOThread t = loop.newIOThread(id, pollMaxNs);
            long tid = threadId(t);
            iothreads.put(id, new IOThreadObject(id, t, pollMaxNs, tid));
        }
        LOG.info("iothread '{}' created (poll-max-ns {})", id, pollMaxNs);
    }

    /** The host thread id (what QEMU's {@code thread-id} reports), read in the thread itself. */
    private long threadId(IOThread t) {
        try {
            return t.context().submit("thread-id", () -> {
                Path self = Files.readSymbolicLink(Path.of("/proc/thread-self"));
                return Long.parseLong(self.getFileName().toString());
            }).get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            LOG.debug("thread id of {} unknown", t.name(), e);
            return -1;
        }
    }

    /** {@code object-del}: an IOThread still serving an export or a node is refused (QEMU would pull it away). */
    public void objectDel(String id) {
        IOThread t;
        synchronized (this) {
            IOThreadObject o = iothreads.get(id);
            if (o == null) {
                throw QmpError.generic("object '" + id + "' not found");
            }
            t = o.thread();
        }
        String user = inMainLoop("object-del", () -> {
            for (Map.Entry<BlockExport, Boolean> e : exports.list()) {
                if (e.getKey().context() == t.context()) {
                    return "export '" + e.getKey().id() + "'";
                }
            }
            for (BlockNode n : layer.nodes()) {
                if (n.context() == t.context()) {
                    return "node '" + n.name() + "'";
                }
            }
            return null;
        });
        if (user != null) {
            throw QmpError.generic("iothread '" + id + "' is in use by " + user);
        }
        synchronized (this) {
            iothreads.remove(id);
        }
        t.close();
    }

    // ------------------------------------------------------------------ block nodes

    /** {@code --blockdev} / {@code blockdev-add}: the node is monitor-owned until {@code blockdev-del}. */
    public void blockdevAdd(QapiArgs a) {
        BlockdevFactory.Spec spec = BlockdevFactory.parse(a, layer, null);
        if (layer.node(spec.nodeName()) != null) {
            throw QmpError.generic("Duplicate nodes with node-name='" + spec.nodeName() + "'");
        }
        Map<BlockdevFactory.Spec, io.vblk.block.BlockDriver> opened = BlockdevFactory.openRemote(spec);
        try {
            inMainLoop("blockdev-add " + spec.nodeName(), () -> BlockdevFactory.build(spec, layer, opened));
        } finally {
            BlockdevFactory.closeUnused(opened);
        }
        synchronized (this) {
            monitorOwned.add(spec.nodeName());
        }
        LOG.info("node '{}' added ({})", spec.nodeName(), spec.driver());
    }

    /** {@code blockdev-del}: only a monitor-owned node nobody uses; the reason is named when refused. */
    public void blockdevDel(String name) {
        run("blockdev-del " + name, () -> {
            BlockNode n = layer.node(name);
            if (n == null) {
                throw QmpError.generic("Failed to find node with node-name='" + name + "'");
            }
            synchronized (this) {
                if (!monitorOwned.contains(name)) {
                    throw QmpError.generic("Node " + name + " is not owned by the monitor");
                }
            }
            String why = inUse(n);
            if (why != null) {
                throw QmpError.generic(why);
            }
            if (!n.isReadOnly()) {
                int r = n.flushSync();
                if (r < 0) {
                    LOG.warn("blockdev-del {}: flush failed: errno {}", name, -r);
                }
            }
            synchronized (this) {
                monitorOwned.remove(name);
            }
            n.unref();
        });
        LOG.info("node '{}' deleted", name);
    }

    /** Why {@code n} cannot be deleted (QEMU's words first, then who uses it), or null. Main loop. */
    String inUse(BlockNode n) {
        for (BlockChild e : n.parents()) {
            if (e.parent() instanceof BlockBackend) {
                List<BlockExport> l = exports.using(n.name());
                String by = l.isEmpty() ? e.parent().parentName() : "export '" + l.get(0).id() + "'";
                return "Node " + n.name() + " is in use (by " + by + ")";
            }
            Job j = Job.of(e.parent());
            if (j != null) {
                return "Node " + n.name() + " is in use (by job '" + j.id() + "')";
            }
            if (e.parent() instanceof BlockNode) {
                return "Block device " + n.name() + " is in use (it is the " + e.name() + " child of node '"
                        + ((BlockNode) e.parent()).name() + "')";
            }
            return "Node " + n.name() + " is in use (by " + e.parent().parentName() + ")";
        }
        return null;
    }

    public synchronized boolean isMonitorOwned(String name) {
        return monitorOwned.contains(name);
    }

    /** {@code x-blockdev-set-iothread}: moves a node (and its graph) to an IOThread or back to the main loop. */
    public void setIothread(String nodeName, String iothreadId, boolean force) {
        IOThread t = iothreadId == null ? null : iothread(iothreadId);
        if (iothreadId != null && t == null) {
            throw QmpError.generic("Cannot find iothread " + iothreadId);
        }
        run("x-blockdev-set-iothread", () -> {
            BlockNode n = layer.node(nodeName);
            if (n == null) {
                throw QmpError.generic("Cannot find node " + nodeName);
            }
            for (BlockChild e : n.parents()) {
                if (e.parent() instanceof BlockBackend) {
                    if (!force) {
                        throw QmpError.generic("Node " + nodeName + " is associated with a BlockBackend and could be "
                                + "in use (use force=true to override this check)");
                    }
                    List<BlockExport> l = exports.using(nodeName);
                    if (!l.isEmpty()) {
                        throw QmpError.generic("Node " + nodeName + " is served by export '" + l.get(0).id()
                                + "' from its IOThread; vblk cannot move an exported node (delete the export first)");
                    }
                }
            }
            try {
                layer.setAioContext(n, t == null ? loop.context() : t.context());
            } catch (BlockException | IllegalStateException e) {
                throw QmpError.generic(e.getMessage());
            }
        });
    }

    // ------------------------------------------------------------------ monitors

    /** {@code --chardev socket,id=C,path=P,server=on,wait=off}: remembered until a monitor uses it. */
    public synchronized void chardevAdd(String id, Path path) {
        if (chardevs.containsKey(id)) {
            throw QmpError.generic("attempt to add duplicate property '" + id + "' to object (type 'container')");
        }
        chardevs.put(id, path);
    }

    /** {@code --monitor chardev=C}: a QMP monitor listening on the chardev's socket. */
    public void monitorAdd(String chardev) throws IOException {
        Path p;
        synchronized (this) {
            p = chardevs.get(chardev);
            if (p == null) {
                throw QmpError.generic("chardev \"" + chardev + "\" not found");
            }
            if (qmp == null) {
                qmp = new QmpServer(dispatcher, qmpThread);
            }
        }
        qmp.listen(chardev, p);
    }

    // ------------------------------------------------------------------ lifecycle

    /** {@code quit}: the daemon stops after replying. */
    public void requestQuit() {
        quit.countDown();
    }

    /** Blocks until {@code quit} (or {@link #requestQuit()} from a signal). */
    public void awaitQuit() throws InterruptedException {
        quit.await();
    }

    public boolean isQuitRequested() {
        return quit.getCount() == 0;
    }

    /** Runs {@code r} on the QMP dispatcher thread (start-up options are applied there, like commands). */
    public <T> T onDispatcher(Callable<T> r) throws Exception {
        try {
            return qmpThread.submit(r).get();
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable c = e.getCause();
            if (c instanceof Exception) {
                throw (Exception) c;
            }
            throw e;
        }
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        quit.countDown();
        try {
            qmpThread.submit(this::shutdownGraph).get(5, TimeUnit.MINUTES);
        } catch (Exception e) {
            LOG.error("daemon shutdown failed", e);
        }
        QmpServer s = qmp;
        if (s != null) {
            s.close();
        }
        qmpThread.shutdownNow();
        jobs.close();
        layer.close();
        loop.close();
        LOG.info("daemon stopped");
    }

    /** On the dispatcher: no command runs meanwhile. */
    private void shutdownGraph() {
        try {
            JobCommands.cancelAll(this);
        } catch (RuntimeException e) {
            LOG.error("cancelling jobs at shutdown failed", e);
        }
        exports.shutdownAll();
        nbd.shutdown();
        List<String> owned;
        synchronized (this) {
            owned = new ArrayList<>(monitorOwned);
        }
        for (int i = owned.size() - 1; i >= 0; i--) {
            String name = owned.get(i);
            try {
                run("release " + name, () -> {
                    BlockNode n = layer.node(name);
                    if (n != null && !n.isClosed()) {
                        if (!n.context().isMain()) {
                            layer.setAioContext(n, loop.context());
                        }
                        if (!n.isReadOnly()) {
                            int r = n.flushSync();
                            if (r < 0) {
                                LOG.error("node '{}': flush at shutdown failed: errno {}", name, -r);
                            }
                        }
                        n.unref();
                    }
                });
            } catch (RuntimeException e) {
                LOG.error("releasing node '{}' at shutdown failed", name, e);
            }
            synchronized (this) {
                monitorOwned.remove(name);
            }
        }
        List<IOThreadObject> its;
        synchronized (this) {
            its = new ArrayList<>(iothreads.values());
            iothreads.clear();
        }
        for (IOThreadObject o : its) {
            o.thread().close();
        }
    }

    public String describe() {
        return loop.dump();
    }
}
