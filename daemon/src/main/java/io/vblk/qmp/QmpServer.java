package io.vblk.qmp;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executor;
import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The QMP monitors of a daemon: QEMU's monitor I/O thread
 * ({@code mon_iothread}) with its {@code monitor_qmp_read} and the
 * dispatcher that runs each request in the main loop
 * ({@code monitor_qmp_dispatcher_co}). One thread reads and writes every
 * monitor socket and cuts requests out of the byte stream
 * ({@link JsonStreamer}, then Jackson); each request is executed by the
 * main loop (the {@code mainLoop} executor), one at a time per connection
 * and in order, and its reply is written back here. Events are queued by
 * any thread and written, in the order they were emitted, to every
 * connection that negotiated capabilities.
 *
 * <p>Each monitor is a listening UNIX socket ({@code --chardev socket,server=on});
 * like QEMU's socket chardev it serves one client at a time, the next one
 * waiting in the backlog. A client that disconnects mid-command loses only
 * the reply: the command runs to its end in the main loop. Bad JSON gets an
 * error reply and the connection keeps serving.
 */
public final class QmpServer implements QmpEvent.Sink, AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(QmpServer.class);
    /** QEMU's QMP_REQ_QUEUE_LEN_MAX: a client with this many requests queued is not read until one is done. */
    static final int QUEUE_MAX = 8;

    private final QmpDispatcher dispatcher;
    private final Executor mainLoop;
    private final ObjectMapper json = new ObjectMapper()
            .enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS)
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
    private final Selector selector;
    private final Thread thread;
    private final ConcurrentLinkedQueue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final List<Monitor> monitors = new ArrayList<>();
    private volatile boolean closed;
    private final CountDownLatch stopped = new CountDownLatch(1);

    public QmpServer(QmpDispatcher dispatcher, Executor mainLoop) {
        this.dispatcher = dispatcher;
        this.mainLoop = mainLoop;
        try {
            this.selector = Selector.open();
        } catch (IOException e) {
            throw new IllegalStateException("cannot open a selector for the QMP monitors: " + e.getMessage(), e);
        }
        thread = new Thread(this::run, "qmp-io");
        thread.setDaemon(true);
        thread.start();
    }

    public QmpDispatcher dispatcher() {
        return dispatcher;
    }

    /**
     * Listens for QMP clients on {@code path} (a stale socket file is
     * replaced). Throws an {@link IOException} naming the path when it
     * cannot.
     */
    public void listen(String name, Path path) throws IOException {
        Files.deleteIfExists(path);
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            s.bind(UnixDomainSocketAddress.of(path));
            s.configureBlocking(false);
        } catch (IOException | RuntimeException e) {
            s.close();
            throw new IOException("Failed to bind socket to " + path + ": " + e.getMessage(), e);
        }
        Monitor m = new Monitor(name, path, s);
        CountDownLatch registered = new CountDownLatch(1);
        onIoThread(() -> {
            synchronized (monitors) {
                monitors.add(m);
            }
            m.watchAccept();
            registered.countDown();
        });
        await(registered, "register monitor " + name);
        LOG.info("QMP monitor '{}' listening on {}", name, path);
    }

    /** Paths of the listening sockets. */
    public List<Path> paths() {
        synchronized (monitors) {
            List<Path> l = new ArrayList<>();
            monitors.forEach(m -> l.add(m.path));
            return l;
        }
    }

    @Override
    public void emit(String name, ObjectNode data) {
        ObjectNode ev = QmpEvent.build(name, data, Instant.now());
        LOG.debug("qmp event {}", ev);
        onIoThread(() -> {
            synchronized (monitors) {
                for (Monitor m : monitors) {
                    Session s = m.session;
                    if (s != null && s.state.negotiated()) {
                        s.send(ev);
                    }
                }
            }
        });
    }

    private void onIoThread(Runnable r) {
        tasks.add(r);
        selector.wakeup();
    }

    private static void await(CountDownLatch l, String what) {
        try {
            if (!l.await(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("QMP I/O thread did not " + what + " within 30 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting to " + what, e);
        }
    }

    private void run() {
        try {
            while (!closed) {
                selector.select();
                Runnable t;
                while ((t = tasks.poll()) != null) {
                    runGuarded(t);
                }
                for (SelectionKey k : selector.selectedKeys()) {
                    Object a = k.attachment();
                    if (!k.isValid()) {
                        continue;
                    }
                    if (a instanceof Monitor) {
                        runGuarded(((Monitor) a)::accept);
                    } else if (a instanceof Session) {
                        Session s = (Session) a;
                        if (k.isValid() && k.isWritable()) {
                            runGuarded(s::flush);
                        }
                        if (k.isValid() && k.isReadable()) {
                            runGuarded(s::read);
                        }
                    }
                }
                selector.selectedKeys().clear();
            }
            Runnable t;
            while ((t = tasks.poll()) != null) {
                runGuarded(t);
            }
        } catch (IOException | RuntimeException e) {
            LOG.error("QMP I/O thread failed", e);
        } finally {
            shutdownAll();
            stopped.countDown();
        }
    }

    private static void runGuarded(Runnable r) {
        try {
            r.run();
        } catch (RuntimeException e) {
            LOG.error("QMP I/O: unexpected failure", e);
        }
    }

    private void shutdownAll() {
        synchronized (monitors) {
            for (Monitor m : monitors) {
                if (m.session != null) {
                    m.session.flushBestEffort();
                    m.session.close("the daemon is stopping");
                }
                try {
                    m.server.close();
                } catch (IOException e) {
                    LOG.debug("closing monitor socket", e);
                }
                try {
                    Files.deleteIfExists(m.path);
                } catch (IOException e) {
                    LOG.warn("could not remove {}: {}", m.path, e.getMessage());
                }
            }
            monitors.clear();
        }
        try {
            selector.close();
        } catch (IOException e) {
            LOG.debug("closing selector", e);
        }
    }

    /**
     * Stops serving: replies already produced are written (best effort, a
     * client that does not read is not waited for), the connections and
     * listening sockets are closed and the socket files removed.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        onIoThread(() -> closed = true);
        if (Thread.currentThread() != thread) {
            await(stopped, "stop");
        }
    }

    /** One {@code --monitor}: a listening socket and its current client. */
    private final class Monitor {
        final String name;
        final Path path;
        final ServerSocketChannel server;
        SelectionKey acceptKey;
        Session session;

        Monitor(String name, Path path, ServerSocketChannel server) {
            this.name = name;
            this.path = path;
            this.server = server;
        }

        void watchAccept() {
            try {
                acceptKey = server.register(selector, SelectionKey.OP_ACCEPT, this);
            } catch (ClosedChannelException e) {
                LOG.warn("QMP monitor '{}' socket closed", name);
            }
        }

        void accept() {
            SocketChannel c;
            try {
                c = server.accept();
            } catch (IOException e) {
                LOG.warn("QMP monitor '{}': accept failed: {}", name, e.getMessage());
                return;
            }
            if (c == null) {
                return;
            }
            acceptKey.interestOps(0); // one client at a time, like a socket chardev
            try {
                c.configureBlocking(false);
                session = new Session(this, c);
            } catch (IOException e) {
                LOG.warn("QMP monitor '{}': cannot set up the connection: {}", name, e.getMessage());
                closeQuietly(c);
                acceptKey.interestOps(SelectionKey.OP_ACCEPT);
                return;
            }
            LOG.info("QMP monitor '{}': client connected", name);
            session.send(dispatcher.greeting());
        }

        void sessionEnded() {
            session = null;
            if (!closed && acceptKey.isValid()) {
                acceptKey.interestOps(SelectionKey.OP_ACCEPT);
            }
        }
    }

    private static void closeQuietly(SocketChannel c) {
        try {
            c.close();
        } catch (IOException e) {
            LOG.debug("close", e);
        }
    }

    /** One client connection: its request queue, its negotiation state and its unsent output. */
    private final class Session {
        final Monitor monitor;
        final SocketChannel ch;
        final SelectionKey key;
        final QmpDispatcher.Session state = new QmpDispatcher.Session();
        final JsonStreamer streamer = new JsonStreamer(this::piece);
        final ArrayDeque<JsonStreamer.Piece> pending = new ArrayDeque<>();
        final ArrayDeque<ByteBuffer> out = new ArrayDeque<>();
        final ByteBuffer in = ByteBuffer.allocate(8192);
        boolean busy;
        boolean gone;

        Session(Monitor monitor, SocketChannel ch) throws IOException {
            this.monitor = monitor;
            this.ch = ch;
            this.key = ch.register(selector, SelectionKey.OP_READ, this);
        }

        void read() {
            in.clear();
            int n;
            try {
                n = ch.read(in);
            } catch (IOException e) {
                close("read failed: " + e.getMessage());
                return;
            }
            if (n < 0) {
                close(streamer.hasPartial() ? "the client left in the middle of a request" : "the client disconnected");
                return;
            }
            streamer.feed(in.array(), 0, n);
            pump();
        }

        void piece(JsonStreamer.Piece p) {
            pending.add(p);
        }

        /** Starts the next request unless one is running; reading pauses while the queue is full. */
        void pump() {
            while (!busy && !gone && !pending.isEmpty()) {
                JsonStreamer.Piece p = pending.poll();
                if (p.problem() != null) {
                    send(QmpDispatcher.error(null, QmpError.generic(p.problem())));
                    continue;
                }
                JsonNode req;
                try {
                    req = json.readTree(p.text());
                } catch (JsonProcessingException e) {
                    send(QmpDispatcher.error(null, QmpError.generic("JSON parse error, " + e.getOriginalMessage())));
                    continue;
                }
                busy = true;
                try {
                    mainLoop.execute(() -> {
                        ObjectNode reply = dispatcher.dispatch(req, state);
                        onIoThread(() -> {
                            busy = false;
                            if (!gone) {
                                send(reply);
                                pump();
                            }
                        });
                    });
                } catch (RuntimeException e) {
                    busy = false;
                    send(QmpDispatcher.error(req.get("id"), QmpError.generic("the daemon is stopping")));
                }
            }
            if (!gone && key.isValid()) {
                int ops = out.isEmpty() ? 0 : SelectionKey.OP_WRITE;
                if (pending.size() < QUEUE_MAX) {
                    ops |= SelectionKey.OP_READ;
                }
                key.interestOps(ops);
            }
        }

        void send(JsonNode msg) {
            if (gone) {
                return;
            }
            byte[] b;
            try {
                b = (json.writeValueAsString(msg) + "\r\n").getBytes(StandardCharsets.UTF_8);
            } catch (JsonProcessingException e) {
                LOG.error("QMP: cannot serialise {}", msg, e);
                return;
            }
            out.add(ByteBuffer.wrap(b));
            flush();
        }

        void flush() {
            try {
                while (!out.isEmpty()) {
                    ByteBuffer b = out.peek();
                    ch.write(b);
                    if (b.hasRemaining()) {
                        break;
                    }
                    out.poll();
                }
            } catch (IOException e) {
                close("write failed: " + e.getMessage());
                return;
            }
            if (key.isValid()) {
                int ops = key.interestOps();
                key.interestOps(out.isEmpty() ? ops & ~SelectionKey.OP_WRITE : ops | SelectionKey.OP_WRITE);
            }
        }

        /** At shutdown: write what is queued as far as the client takes it without waiting. */
        void flushBestEffort() {
            try {
                while (!out.isEmpty()) {
                    ByteBuffer b = out.peek();
                    if (ch.write(b) == 0 && b.hasRemaining()) {
                        return;
                    }
                    if (!b.hasRemaining()) {
                        out.poll();
                    }
                }
            } catch (IOException e) {
                LOG.debug("final flush", e);
            }
        }

        void close(String why) {
            if (gone) {
                return;
            }
            gone = true;
            LOG.info("QMP monitor '{}': connection ends: {}", monitor.name, why);
            key.cancel();
            closeQuietly(ch);
            out.clear();
            pending.clear();
            monitor.sessionEnded();
        }
    }
}
