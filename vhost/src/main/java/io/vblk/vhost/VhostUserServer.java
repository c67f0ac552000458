package io.vblk.vhost;

import io.vblk.aio.AioContext;
import io.vblk.aio.AioHandler;
import io.vblk.aio.AioTimer;
import io.vblk.aio.MainLoop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.atomic.AtomicLong;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The listening side of a vhost-user back-end: QEMU's {@code VuServer}
 * (util/vhost-user-server.c). It listens on a UNIX socket in the main loop,
 * serves one front-end at a time — while one is connected the listening
 * socket is not watched, so the next front-end waits in the backlog — and
 * has its {@link VhostUserConnection} serve one message per wake-up.
 *
 * <p>When the connection ends (the transport says why: end of file, a
 * socket error, a header that cannot be trusted, a reply that cannot be
 * sent) the device is stopped and reset
 * ({@link VhostUserDevice#disconnect}), an optional hook runs (the block
 * export flushes its disk), and the next front-end is accepted. Nothing a
 * front-end does ends the server.
 */
public final class VhostUserServer implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(VhostUserServer.class);
    /** A message whose first byte arrived must be complete within this, or the front-end is dropped. */
    static final Duration MESSAGE_TIMEOUT = Duration.ofSeconds(5);
    /** A reply the front-end does not read within this ends the connection. */
    static final Duration SEND_TIMEOUT = Duration.ofSeconds(30);

    private final MainLoop loop;
    private final AioContext ctx;
    private final Path path;
    private final UnixSocket listener;
    private final VhostUserDevice device;
    private final Runnable afterDisconnect;
    private final VhostUserEvents events;
    private AioHandler listenHandler;
    private AioHandler connHandler;
    /** Drops a front-end whose message stays incomplete (a header without its payload, a slow trickle). */
    private AioTimer messageDeadline;
    private VhostUserConnection conn;
    private volatile boolean connected;
    private volatile boolean closed;
    /** A message is being processed (main loop): close() then leaves ending the connection to it. */
    private boolean processing;
    private CompletableFuture<Void> closeWaiter;
    private final AtomicLong connections = new AtomicLong();
    private final AtomicLong disconnects = new AtomicLong();

    private VhostUserServer(MainLoop loop, Path path, UnixSocket listener, VhostUserDevice device,
            Runnable afterDisconnect, VhostUserEvents events) {
        this.loop = loop;
        this.ctx = loop.context();
        this.path = path;
        this.listener = listener;
        this.device = device;
        this.afterDisconnect = afterDisconnect;
        this.events = events == null ? VhostUserEvents.NONE : events;
    }

    /**
     * Listens on {@code path} and serves front-ends from {@code loop}'s main
     * context. {@code afterDisconnect} (may be null) runs in the main loop after
     * each connection's device was stopped and reset.
     */
    public static VhostUserServer start(MainLoop loop, Path path, VhostUserDevice device, Runnable afterDisconnect,
            VhostUserEvents events) {
        UnixSocket l = UnixSocket.listen(path, 16);
        VhostUserServer s = new VhostUserServer(loop, path, l, device, afterDisconnect, events);
        device.setEvents(s.events);
        try {
            loop.watchdog(Duration.ofSeconds(30)).run("vhost-user listen", s::watchListener);
        } catch (RuntimeException e) {
            l.close();
            throw e;
        }
        LOG.info("vhost-user back-end {} listening on {}", device.device().name(), path);
        return s;
    }

    public Path path() {
        return path;
    }

    public VhostUserDevice device() {
        return device;
    }

    public boolean isConnected() {
        return connected;
    }

    /** Front-ends accepted so far. */
    public long connections() {
        return connections.get();
    }

    /** Connections ended so far. */
    public long disconnects() {
        return disconnects.get();
    }

    private void watchListener() {
        if (closed || listenHandler != null) {
            return;
        }
        listenHandler = ctx.setFdHandler(new AioHandler.Builder("vhost-user-listen", listener.fd())
                .onRead(this::accept));
    }

    private void accept() {
        UnixSocket c;
        try {
            c = listener.accept();
        } catch (VhostUserException e) {
            LOG.warn("vhost-user: accept on {} failed: {}", path, e.getMessage());
            return;
        }
        if (c == null) {
            return;
        }
        listenHandler.remove();
        listenHandler = null;
        try {
            c.setTimeouts(MESSAGE_TIMEOUT, SEND_TIMEOUT);
        } catch (VhostUserException e) {
            LOG.warn("vhost-user: cannot configure the connection: {}", e.getMessage());
            c.close();
            watchListener();
            return;
        }
        conn = new VhostUserConnection(c);
        connected = true;
        connections.incrementAndGet();
        int pid = c.peerPid();
        LOG.info("vhost-user: front-end connected on {} (pid {})", path, pid);
        events.connected(pid);
        watchConnection();
    }

    private void watchConnection() {
        connHandler = ctx.setFdHandler(new AioHandler.Builder("vhost-user-conn", conn.fd()).onRead(this::readable));
    }

    /**
     * One message per wake-up; the level-triggered fd brings us back for the
     * next. While a message is processed the connection is not watched: its
     * handling may poll the main loop (a ring stop drains the backend), and a
     * nested poll must not start on the next message — QEMU's vhost-user server
     * likewise handles one message at a time in its coroutine.
     */
    private void readable() {
        VhostUserConnection c = conn;
        if (c == null) {
            return;
        }
        connHandler.remove();
        connHandler = null;
        processing = true;
        try {
            VhostUserConnection.Ended end = c.serveOne(device);
            if (end != null) {
                endConnection(end.why(), end.warn());
            } else if (conn == c) {
                watchMessageDeadline(c);
            }
        } finally {
            processing = false;
            if (conn == c && closed) {
                endConnection("the back-end is shutting down", false); // close() came in during the message
            } else if (conn == c && connHandler == null) {
                watchConnection();
            }
            CompletableFuture<Void> w = closeWaiter;
            if (closed && conn == null && w != null) {
                closeWaiter = null;
                w.complete(null);
            }
        }
    }

    /** Arms the deadline when a message started arriving, disarms it when none is incomplete. */
    private void watchMessageDeadline(VhostUserConnection c) {
        if (!c.messageInProgress()) {
            if (messageDeadline != null) {
                messageDeadline.del();
            }
            return;
        }
        if (messageDeadline == null) {
            messageDeadline = ctx.timerNew("vhost-user-message-deadline", this::messageTimedOut);
        }
        if (!messageDeadline.isPending()) {
            messageDeadline.modInNs(MESSAGE_TIMEOUT.toNanos());
        }
    }

    private void messageTimedOut() {
        VhostUserConnection c = conn;
        if (c == null || processing || !c.messageInProgress()) {
            return;
        }
        endConnection("dropped: the front-end sent " + c.messageProgress() + " and nothing more within "
                + MESSAGE_TIMEOUT.toSeconds() + " s", true);
    }

    private void endConnection(String why, boolean warn) {
        if (messageDeadline != null) {
            messageDeadline.del();
        }
        if (warn) {
            LOG.warn("vhost-user: connection on {} ends: {}", path, why);
        } else {
            LOG.info("vhost-user: connection on {} ends: {}", path, why);
        }
        if (connHandler != null) {
            connHandler.remove();
            connHandler = null;
        }
        try {
            device.disconnect();
        } catch (RuntimeException e) {
            LOG.error("vhost-user: device cleanup after disconnect failed", e);
        }
        if (afterDisconnect != null) {
            try {
                afterDisconnect.run();
            } catch (RuntimeException e) {
                LOG.error("vhost-user: after-disconnect hook failed", e);
            }
        }
        VhostUserConnection c = conn;
        conn = null;
        if (c != null) {
            c.close();
        }
        connected = false;
        disconnects.incrementAndGet();
        events.disconnected(why);
        watchListener();
    }

    /** Stops listening, ends the current connection (device stopped and reset) and removes the socket file. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        CompletableFuture<Void> ended = new CompletableFuture<>();
        try {
            loop.run("vhost-user server close", () -> {
                closed = true;
                if (listenHandler != null) {
                    listenHandler.remove();
                    listenHandler = null;
                }
                if (conn == null) {
                    ended.complete(null);
                } else if (processing) {
                    closeWaiter = ended; // this BH runs inside a message's nested poll: the message ends it
                } else {
                    endConnection("the back-end is shutting down", false);
                    ended.complete(null);
                }
            });
            loop.watchdog(Duration.ofSeconds(60)).await("vhost-user server close", ended);
        } finally {
            closed = true;
            listener.close();
            try {
                Files.deleteIfExists(path);
            } catch (IOException e) {
                LOG.warn("vhost-user: could not remove {}: {}", path, e.getMessage());
            }
        }
    }

    public String describe() {
        return "vhost-user server on " + path + ": " + (connected ? "connected" : "listening") + ", connections="
                + connections.get() + " disconnects=" + disconnects.get() + "\n" + device.describe();
    }
}
