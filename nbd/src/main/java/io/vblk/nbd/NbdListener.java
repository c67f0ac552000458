package io.vblk.nbd;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import io.vblk.aio.Errno;

import java.io.IOException;
import java.net.Inet4Address;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;

/**
 * The listening socket of the NBD server (QEMU's {@code QIONetListener}):
 * a non-blocking UNIX or TCP socket whose accepts never wait. A stale UNIX
 * socket file is replaced; anything else at the path is refused.
 */
final class NbdListener implements AutoCloseable {
    private static final int SOCKADDR_UN_SIZE = 110;
    private static final int MAX_PATH_BYTES = 107;

    private final int fd;
    private final NbdAddress address;
    private final int port;
    private boolean closed;

    private NbdListener(int fd, NbdAddress address, int port) {
        this.fd = fd;
        this.address = address;
        this.port = port;
    }

    int fd() {
        return fd;
    }

    /** The bound TCP port (the kernel's choice for port 0), or -1 for a UNIX socket. */
    int port() {
        return port;
    }

    static NbdListener listen(NbdAddress a, int backlog) {
        return a.isUnix() ? listenUnix(a, backlog) : listenInet(a, backlog);
    }

    private static NbdListener listenUnix(NbdAddress a, int backlog) {
        Path path = a.path();
        byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
        if (p.length > MAX_PATH_BYTES) {
            throw new NbdException("socket path '" + path + "' is " + p.length + " bytes; a UNIX socket path holds at most "
                    + MAX_PATH_BYTES);
        }
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            if (!isSocket(path)) {
                throw new NbdException("'" + path + "' exists and is not a socket; refusing to replace it");
            }
            try {
                Files.delete(path); // a stale socket: QEMU's socket_listen unlinks it the same way
            } catch (IOException e) {
                throw new NbdException("cannot remove the stale socket '" + path + "': " + e.getMessage());
            }
        }
        Memory addr = new Memory(SOCKADDR_UN_SIZE);
        addr.clear();
        addr.setShort(0, (short) SocketCalls.AF_UNIX);
        addr.write(2, p, 0, p.length);
        int s = socket(SocketCalls.AF_UNIX, a);
        bindListen(s, addr, SOCKADDR_UN_SIZE, backlog, a);
        return new NbdListener(s, a, -1);
    }

    private static boolean isSocket(Path path) {
        try {
            int mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            return (mode & 0170000) == 0140000;
        } catch (IOException | UnsupportedOperationException e) {
            return false;
        }
    }

    private static NbdListener listenInet(NbdAddress a, int backlog) {
        InetAddress ia;
        try {
            ia = InetAddress.getByName(a.host());
        } catch (UnknownHostException e) {
            throw new NbdException("cannot resolve host '" + a.host() + "': " + e.getMessage());
        }
        Memory addr;
        int len;
        int family;
        if (ia instanceof Inet6Address) {
            family = SocketCalls.AF_INET6;
            len = 28;
            addr = new Memory(len);
            addr.clear();
            addr.setShort(0, (short) family);
            addr.setShort(2, Short.reverseBytes((short) a.port()));
            addr.write(8, ia.getAddress(), 0, 16);
        } else {
            family = SocketCalls.AF_INET;
            len = 16;
            addr = new Memory(len);
            addr.clear();
            addr.setShort(0, (short) family);
            addr.setShort(2, Short.reverseBytes((short) a.port()));
            addr.write(4, ((Inet4Address) ia).getAddress(), 0, 4);
        }
        int s = socket(family, a);
        Memory one = new Memory(4);
        one.setInt(0, 1);
        SocketCalls.setsockopt(s, SocketCalls.SOL_SOCKET, SocketCalls.SO_REUSEADDR, one, 4);
        bindListen(s, addr, len, backlog, a);
        Memory got = new Memory(28);
        Memory glen = new Memory(4);
        glen.setInt(0, 28);
        int port = a.port();
        if (SocketCalls.getsockname(s, got, glen) == 0) {
            port = Short.toUnsignedInt(Short.reverseBytes(got.getShort(2)));
        }
        return new NbdListener(s, a, port);
    }

    private static int socket(int family, NbdAddress a) {
        int s = SocketCalls.socket(family, SocketCalls.SOCK_STREAM | SocketCalls.SOCK_NONBLOCK | SocketCalls.SOCK_CLOEXEC, 0);
        if (s < 0) {
            throw new NbdException("cannot create a socket for " + a + ": " + Errno.name(SocketCalls.errno()));
        }
        return s;
    }

    private static void bindListen(int s, Pointer addr, int len, int backlog, NbdAddress a) {
        if (SocketCalls.bind(s, addr, len) < 0) {
            int err = SocketCalls.errno();
            SocketCalls.close(s);
            throw new NbdException("cannot bind " + a + ": " + (err == 98 ? "address already in use" : Errno.name(err)));
        }
        if (SocketCalls.listen(s, backlog) < 0) {
            int err = SocketCalls.errno();
            SocketCalls.close(s);
            throw new NbdException("cannot listen on " + a + ": " + Errno.name(err));
        }
    }

    /** A new non-blocking connection, -1 when none is pending, or -errno on a real failure. */
    int accept() {
        int c = SocketCalls.accept4(fd, Pointer.NULL, Pointer.NULL, SocketCalls.SOCK_NONBLOCK | SocketCalls.SOCK_CLOEXEC);
        if (c >= 0) {
            if (!address.isUnix()) {
                Memory one = new Memory(4);
                one.setInt(0, 1);
                SocketCalls.setsockopt(c, SocketCalls.IPPROTO_TCP, SocketCalls.TCP_NODELAY, one, 4);
            }
            return c;
        }
        int err = SocketCalls.errno();
        return err == SocketCalls.EAGAIN || err == SocketCalls.EINTR || err == 103 /* ECONNABORTED */ ? -1 : -err;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        SocketCalls.close(fd);
        if (address.isUnix()) {
            try {
                Files.deleteIfExists(address.path());
            } catch (IOException e) {
                // the server is going away; a leftover socket file is replaced by the next listen
            }
        }
    }
}
