package io.vblk.nbd;

import java.nio.file.Path;
import java.util.Objects;

/**
 * Where the NBD server listens: QEMU's {@code SocketAddress} of the kinds
 * {@code --nbd-server addr.type=unix,addr.path=P} and
 * {@code addr.type=inet,addr.host=H,addr.port=N} name. An inet port of 0
 * lets the kernel choose one ({@link NbdServer#port()} tells which).
 */
public final class NbdAddress {
    private final Path path;
    private final String host;
    private final int port;

    private NbdAddress(Path path, String host, int port) {
        this.path = path;
        this.host = host;
        this.port = port;
    }

    public static NbdAddress unix(Path path) {
        return new NbdAddress(Objects.requireNonNull(path, "path"), null, -1);
    }

    public static NbdAddress inet(String host, int port) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("port must be 0..65535, not " + port);
        }
        return new NbdAddress(null, host == null || host.isEmpty() ? "0.0.0.0" : host, port);
    }

    public boolean isUnix() {
        return path != null;
    }

    public Path path() {
        return path;
    }

    public String host() {
        return host;
    }

    public int port() {
        return port;
    }

    @Override
    public String toString() {
        return isUnix() ? "unix:" + path : "inet:" + host + ":" + port;
    }
}
