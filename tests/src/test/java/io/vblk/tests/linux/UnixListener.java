package io.vblk.tests.linux;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.Supplier;

/**
 * A UNIX socket the test listens on and a QEMU process connects to (QEMU's
 * client-mode {@code -chardev socket,path=…} and {@code -qmp unix:…}): the
 * socket exists before the process starts, so nothing waits for a file to
 * appear, and the accept fails early, with the process's output, if the
 * process exits instead of connecting.
 */
final class UnixListener implements AutoCloseable {
    private static final long SLICE_MS = 200;
    private final Path path;
    private final ServerSocketChannel server;

    UnixListener(Path path) throws IOException {
        this.path = path;
        Files.deleteIfExists(path);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
        server.configureBlocking(false);
    }

    Path path() {
        return path;
    }

    /**
     * Accepts one connection within {@code bound}; fails the test if
     * {@code peer} exits first or the bound passes ({@code diagnosis} says
     * what the peer printed). The returned channel is blocking.
     */
    SocketChannel accept(String what, ProcessHandle peer, Duration bound, Supplier<String> diagnosis)
            throws IOException {
        long deadline = System.nanoTime() + bound.toNanos();
        try (Selector sel = Selector.open()) {
            server.register(sel, SelectionKey.OP_ACCEPT);
            for (;;) {
                SocketChannel c = server.accept();
                if (c != null) {
                    c.configureBlocking(true);
                    return c;
                }
                if (!peer.isAlive()) {
                    fail(what + ": the process exited before connecting to " + path + "\n" + diagnosis.get());
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    fail(what + ": no connection to " + path + " within " + bound + "\n" + diagnosis.get());
                }
                sel.select(Math.max(1, Math.min(left / 1_000_000, SLICE_MS)));
                sel.selectedKeys().clear();
            }
        }
    }

    @Override
    public void close() throws IOException {
        server.close();
        Files.deleteIfExists(path);
    }
}
