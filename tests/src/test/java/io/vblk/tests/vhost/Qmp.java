package io.vblk.tests.vhost;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * A QMP client for one QEMU. The test listens and QEMU connects
 * ({@code -qmp unix:PATH}, client mode), so nothing waits for a socket file
 * to appear. Replies are matched by shape ({@code "return"} or
 * {@code "error"}); events in between are kept in the transcript.
 */
final class Qmp implements AutoCloseable {
    static final Duration REPLY_BOUND = Duration.ofSeconds(60);
    private final SocketChannel ch;
    private final LineSource lines;

    private Qmp(SocketChannel ch, String name) {
        this.ch = ch;
        this.lines = new LineSource(name + "-qmp", Channels.newInputStream(ch));
    }

    static ServerSocketChannel listen(Path path) throws IOException {
        Files.deleteIfExists(path);
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        s.bind(UnixDomainSocketAddress.of(path));
        s.configureBlocking(false);
        return s;
    }

    /** Accepts QEMU's connection (bounded; fails early if QEMU exits), reads the greeting, negotiates capabilities. */
    static Qmp accept(ServerSocketChannel s, String name, Process qemu, Duration bound, Path qemuOutput)
            throws IOException {
        long deadline = System.nanoTime() + bound.toNanos();
        try (Selector sel = Selector.open()) {
            s.register(sel, SelectionKey.OP_ACCEPT);
            SocketChannel c = null;
            while (c == null) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    fail(name + ": QEMU did not connect to QMP within " + bound + "; its output:\n"
                            + Tools.read(qemuOutput));
                }
                if (!qemu.isAlive()) {
                    fail(name + ": QEMU exited with " + qemu.exitValue() + " before connecting to QMP; its output:\n"
                            + Tools.read(qemuOutput));
                }
                sel.select(Math.max(1, Math.min(left / 1_000_000, 200)));
                sel.selectedKeys().clear();
                c = s.accept();
            }
            c.configureBlocking(true);
            Qmp q = new Qmp(c, name);
            q.lines.await("{\"QMP\"", bound);
            q.execute("qmp_capabilities");
            return q;
        }
    }

    /** Runs a command; returns its reply line, or fails the test with the transcript on an error reply. */
    String execute(String command) throws IOException {
        String json = "{\"execute\": \"" + command + "\"}\n";
        ByteBuffer b = ByteBuffer.wrap(json.getBytes(StandardCharsets.UTF_8));
        while (b.hasRemaining()) {
            ch.write(b);
        }
        String reply = lines.await("answering " + command,
                l -> l.startsWith("{\"return\"") || l.startsWith("{\"error\""), REPLY_BOUND);
        if (reply.startsWith("{\"error\"")) {
            fail("QMP " + command + " failed: " + reply);
        }
        return reply;
    }

    String transcript() {
        return lines.text();
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
