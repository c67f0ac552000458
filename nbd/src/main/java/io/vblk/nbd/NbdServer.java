package io.vblk.nbd;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioContextLock;
import io.vblk.aio.AioHandler;
import io.vblk.aio.Errno;
import io.vblk.aio.MainLoop;
import io.vblk.block.BlockBackend;
import io.vblk.block.BlockException;
import io.vblk.block.BlockLayer;
import io.vblk.block.BlockNode;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The NBD server: QEMU's {@code NBDServerData} (blockdev-nbd.c) and the
 * export list of nbd/server.c, as {@code --nbd-server} / {@code nbd-server-start}
 * and {@code block-export-add type=nbd} drive them. It listens in the main
 * loop, negotiates each client there, and hands the client to the chosen
 * export's AioContext for the transmission phase.
 *
 * <p>Every method is called in the main loop's home thread (where QMP and
 * the command line run). Export changes take the node's context lock for
 * the graph edge, as QEMU's {@code aio_context_acquire} did.
 */
public final class NbdServer {
    private static final Logger LOG = LoggerFactory.getLogger(NbdServer.class);

    private final MainLoop loop;
    private final BlockLayer layer;
    private final AioContext main;
    private final NbdListener listener;
    private final NbdAddress address;
    private AioHandler listenHandler;
    private final Map<String, NbdExport> exports = new LinkedHashMap<>();
    private final Set<NbdClient> clients = new LinkedHashSet<>();
    private final AtomicLong accepted = new AtomicLong();
    private boolean stopped;
    private volatile long handshakeNanos = TimeUnit.SECONDS.toNanos(NbdClient.HANDSHAKE_SECONDS);
    private CompletableFuture<Void> stopFuture;

    private final NbdNegotiation.Targets targets = new NbdNegotiation.Targets() {
        @Override
        public NbdNegotiation.Target find(String name) {
            NbdExport e = exports.get(name);
            return e == null || e.isRemoving() ? null : e;
        }

        @Override
        public Collection<? extends NbdNegotiation.Target> list() {
            List<NbdExport> l = new ArrayList<>();
            for (NbdExport e : exports.values()) {
                if (!e.isRemoving()) {
                    l.add(e);
                }
            }
            return l;
        }
    };

    private NbdServer(BlockLayer layer, NbdListener listener, NbdAddress address) {
        this.loop = layer.loop();
        this.layer = layer;
        this.main = loop.context();
        this.listener = listener;
        this.address = address;
    }

    /**
     * Starts listening on {@code address}: QEMU's {@code nbd_server_start}.
     * {@code maxConnections} and {@code tlsCreds} are QEMU's options of the
     * same names, refused here (pass 0 and null).
     */
    public static NbdServer start(BlockLayer layer, NbdAddress address, int maxConnections, String tlsCreds) {
        if (tlsCreds != null) {
            throw new NbdException("NBD server: tls-creds is not supported (vblk's NBD server has no TLS)");
        }
        if (maxConnections != 0) {
            throw new NbdException("NBD server: max-connections is not supported (connections are not limited)");
        }
        checkMain(layer.loop().context(), "nbd-server-start");
        NbdListener l = NbdListener.listen(address, 64);
        NbdServer s = new NbdServer(layer, l, address);
        s.listenHandler = s.main.setFdHandler(new AioHandler.Builder("nbd-listen", l.fd()).onRead(s::accept));
        LOG.info("NBD server listening on {}", address.isUnix() ? address : "inet:" + address.host() + ":" + l.port());
        return s;
    }

    public static NbdServer start(BlockLayer layer, NbdAddress address) {
        return start(layer, address, 0, null);
    }

    public NbdAddress address() {
        return address;
    }

    /** The TCP port listened on (the kernel's pick for port 0), or -1 on a UNIX socket. */
    public int port() {
        return listener.port();
    }

    /** How long a client may take from connecting to NBD_OPT_GO (QEMU's {@code handshake-max-seconds}). */
    public void setHandshakeTimeout(Duration d) {
        if (d.isNegative() || d.isZero()) {
            throw new IllegalArgumentException("the handshake timeout must be positive, not " + d);
        }
        handshakeNanos = d.toNanos();
    }

    long handshakeNanos() {
        return handshakeNanos;
    }

    AioContext mainContext() {
        return main;
    }

    /** Connections accepted so far. */
    public long connectionsAccepted() {
        return accepted.get();
    }

    /** Connections open now (in the handshake or serving an export). Main loop. */
    public int connections() {
        return clients.size();
    }

    private void accept() {
        for (int i = 0; i < 16; i++) {
            int fd = listener.accept();
            if (fd == -1) {
                return;
            }
            if (fd < -1) {
                LOG.warn("NBD server on {}: accept failed: {}", address, Errno.name(-fd));
                return;
            }
            String peer = "#" + accepted.incrementAndGet() + "(fd " + fd + ")";
            NbdClient c = new NbdClient(this, fd, peer, targets, main);
            clients.add(c);
            LOG.info("nbd {}: connected on {}", peer, address);
            c.start();
        }
    }

    // ------------------------------------------------------------------ exports

    /**
     * Exports {@code node} as {@code name}: QEMU's {@code block-export-add
     * type=nbd}. A writable export needs a writable node. The node keeps
     * its AioContext while exported (the export's backend refuses moves).
     */
    public NbdExport addExport(String id, String name, String description, BlockNode node, boolean writable) {
        checkMain(main, "block-export-add");
        if (stopped) {
            throw new NbdException("the NBD server is stopped");
        }
        if (name == null || name.getBytes(java.nio.charset.StandardCharsets.UTF_8).length > NbdProto.MAX_STRING) {
            throw new NbdException("an NBD export name is at most " + NbdProto.MAX_STRING + " bytes");
        }
        if (exports.containsKey(name)) {
            throw new NbdException("NBD export '" + name + "' already exists");
        }
        for (NbdExport e : exports.values()) {
            if (e.id().equals(id)) {
                throw new NbdException("an export with id '" + id + "' already exists");
            }
        }
        if (writable && node.isReadOnly()) {
            throw new NbdException("cannot export read-only node '" + node.name() + "' as writable");
        }
        BlockBackend blk = layer.newBackend("nbd-export:" + id);
        AioContextLock.Held held = node.context().acquire(); // the graph edge is changed under the node's lock
        try {
            blk.attach(node);
            blk.setReadOnly(!writable);
            blk.pin("exported over NBD as '" + name + "'");
        } catch (BlockException e) {
            layer.removeBackend(blk);
            throw e;
        } finally {
            held.close();
        }
        NbdExport e = new NbdExport(id, name, description, node, blk, writable);
        exports.put(name, e);
        LOG.info("NBD: exporting node '{}' as '{}'{}", node.name(), name, writable ? " (writable)" : " (read-only)");
        return e;
    }

    public NbdExport addExport(String name, String description, BlockNode node, boolean writable) {
        return addExport(name, name, description, node, writable);
    }

    /** The export named {@code name} (including one being removed), or null. Main loop. */
    public NbdExport export(String name) {
        return exports.get(name);
    }

    /** The export whose id is {@code id}, or null. Main loop. */
    public NbdExport exportById(String id) {
        for (NbdExport e : exports.values()) {
            if (e.id().equals(id)) {
                return e;
            }
        }
        return null;
    }

    public List<NbdExport> exports() {
        return new ArrayList<>(exports.values());
    }

    /**
     * Removes an export: QEMU's {@code block-export-del}. New clients can no
     * longer choose it; with {@code hard} its connections are closed,
     * otherwise (QEMU's mode=safe) an export in use is refused. The future
     * completes in the main loop once the last request finished and the
     * node is let go (QEMU's BLOCK_EXPORT_DELETED).
     */
    public CompletableFuture<Void> removeExport(String name, boolean hard) {
        checkMain(main, "block-export-del");
        NbdExport e = exports.get(name);
        if (e == null) {
            throw new NbdException("NBD export '" + name + "' does not exist");
        }
        if (e.isRemoving()) {
            return e.deleted;
        }
        if (!hard && e.clientCount() > 0) {
            throw new NbdException("export '" + name + "' is in use by " + e.clientCount()
                    + " connection(s); remove it with mode=hard to drop them");
        }
        e.markRemoving();
        for (NbdClient c : new ArrayList<>(e.clients)) {
            c.requestClose("export '" + name + "' is being removed");
        }
        maybeDeleted(e);
        return e.deleted;
    }

    /** {@link #removeExport} by the export's id, as {@code block-export-del id=} names it. */
    public CompletableFuture<Void> removeExportById(String id, boolean hard) {
        NbdExport e = exportById(id);
        if (e == null) {
            throw new NbdException("export '" + id + "' does not exist");
        }
        return removeExport(e.name(), hard);
    }

    /** A client chose {@code e} (main loop). */
    void joined(NbdClient c, NbdExport e) {
        e.clients.add(c);
    }

    /** A client ended and finished its last request (its home context): forget it in the main loop. */
    void gone(NbdClient c) {
        main.bhScheduleOneshot("nbd-client-gone", () -> {
            clients.remove(c);
            NbdExport e = c.export;
            if (e != null) {
                e.clients.remove(c);
                maybeDeleted(e);
            }
            maybeStopped();
        });
    }

    private void maybeDeleted(NbdExport e) {
        if (!e.isRemoving() || !e.clients.isEmpty() || e.deleted.isDone()) {
            return;
        }
        exports.remove(e.name(), e);
        AioContextLock.Held held = e.context().acquire();
        try {
            layer.removeBackend(e.backend()); // waits for the backend's requests: none, every client is gone
        } catch (RuntimeException ex) {
            LOG.error("NBD: releasing node '{}' of export '{}' failed", e.node().name(), e.name(), ex);
            e.deleted.completeExceptionally(ex);
            return;
        } finally {
            held.close();
        }
        LOG.info("NBD: export '{}' deleted", e.name());
        e.deleted.complete(null);
    }

    // ------------------------------------------------------------------ stopping

    /**
     * Stops the server: QEMU's {@code nbd-server-stop}. Stops listening,
     * closes every connection and removes every export; the future completes
     * (main loop) once all are gone.
     */
    public CompletableFuture<Void> stop() {
        checkMain(main, "nbd-server-stop");
        if (stopFuture != null) {
            return stopFuture;
        }
        stopped = true;
        stopFuture = new CompletableFuture<>();
        if (listenHandler != null) {
            listenHandler.remove();
            listenHandler = null;
        }
        listener.close();
        for (NbdExport e : new ArrayList<>(exports.values())) {
            removeExport(e.name(), true);
        }
        for (NbdClient c : new ArrayList<>(clients)) {
            if (c.export == null) {
                c.requestClose("the NBD server is stopping");
            }
        }
        maybeStopped();
        return stopFuture;
    }

    private void maybeStopped() {
        if (stopFuture != null && !stopFuture.isDone() && clients.isEmpty() && exports.isEmpty()) {
            LOG.info("NBD server on {} stopped", address);
            stopFuture.complete(null);
        }
    }

    private static void checkMain(AioContext main, String what) {
        if (!main.inHomeThread()) {
            throw new IllegalStateException(what + " from thread '" + Thread.currentThread().getName()
                    + "': NBD server calls run in the main loop");
        }
    }

    public String describe() {
        StringBuilder sb = new StringBuilder("NBD server on ").append(address).append(": ").append(clients.size())
                .append(" connection(s)\n");
        for (NbdExport e : exports.values()) {
            sb.append("  ").append(e).append(", clients=").append(e.clientCount())
                    .append(e.isRemoving() ? ", removing" : "").append('\n');
        }
        return sb.toString();
    }
}
