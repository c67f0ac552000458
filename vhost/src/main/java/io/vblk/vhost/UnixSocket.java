package io.vblk.vhost;

import static io.vblk.vhost.SocketCalls.AF_UNIX;
import static io.vblk.vhost.SocketCalls.SOCK_CLOEXEC;
import static io.vblk.vhost.SocketCalls.SOCK_NONBLOCK;
import static io.vblk.vhost.SocketCalls.SOCK_STREAM;
import static io.vblk.vhost.SocketCalls.SOL_SOCKET;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import io.vblk.aio.Errno;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

/**
 * A UNIX stream socket that carries file descriptors (SCM_RIGHTS), through
 * JNA: what QEMU's {@code QIOChannelSocket} and libvhost-user's
 * {@code vu_message_read}/{@code vu_message_write} do for vhost-user. The C
 * structures are written at raw offsets (x86-64):
 * {@code msghdr} = {name 0, namelen 8, iov 16, iovlen 24, control 32,
 * controllen 40, flags 48} (56 bytes), {@code iovec} = {base, len},
 * {@code cmsghdr} = {len (8), level (4), type (4), data}.
 *
 * <p>One thread sends and one thread receives at a time (each direction has
 * its own lock and native buffers). Received descriptors are close-on-exec
 * and belong to the caller.
 */
public final class UnixSocket implements AutoCloseable {
    /** The most descriptors one message carries (VHOST_MEMORY_BASELINE_NREGIONS). */
    public static final int MAX_FDS = 8;
    /** {@code sun_path} holds 108 bytes including the terminating NUL. */
    public static final int MAX_PATH_BYTES = 107;
    static final int CHUNK = 8192;
    private static final int SOCKADDR_UN_SIZE = 110;
    private static final int MSGHDR_SIZE = 56;
    private static final int CMSG_HDR_SIZE = 16;
    private static final int CONTROL_SIZE = CMSG_HDR_SIZE + 4 * MAX_FDS;
    private static final int S_IFMT = 0170000;
    private static final int S_IFSOCK = 0140000;

    private final int fd;
    private final String name;
    private final Object sendLock = new Object();
    private final Object recvLock = new Object();
    private final Memory sendMsg = new Memory(MSGHDR_SIZE);
    private final Memory sendIov = new Memory(16);
    private final Memory sendCtl = new Memory(CONTROL_SIZE);
    private final Memory sendBuf = new Memory(CHUNK);
    private final Memory recvMsg = new Memory(MSGHDR_SIZE);
    private final Memory recvIov = new Memory(16);
    private final Memory recvCtl = new Memory(CONTROL_SIZE);
    private final Memory recvBuf = new Memory(CHUNK);
    private volatile boolean closed;

    private UnixSocket(int fd, String name) {
        this.fd = fd;
        this.name = name;
    }

    public int fd() {
        return fd;
    }

    public String name() {
        return name;
    }

    private static Memory sockaddr(Path path) {
        byte[] p = path.toString().getBytes(StandardCharsets.UTF_8);
        if (p.length > MAX_PATH_BYTES) {
            throw new VhostUserException("socket path '" + path + "' is " + p.length + " bytes; a UNIX socket path "
                    + "holds at most " + MAX_PATH_BYTES + " (use a shorter directory)");
        }
        Memory a = new Memory(SOCKADDR_UN_SIZE);
        a.clear();
        a.setShort(0, (short) AF_UNIX);
        a.write(2, p, 0, p.length);
        return a;
    }

    /**
     * Listens on {@code path} (non-blocking accepts). A stale socket file left
     * by a dead server is replaced; a live one, or a path that is not a
     * socket, is refused with a message saying so.
     */
    public static UnixSocket listen(Path path, int backlog) {
        Memory addr = sockaddr(path);
        if (Files.exists(path, LinkOption.NOFOLLOW_LINKS)) {
            int mode;
            try {
                mode = (Integer) Files.getAttribute(path, "unix:mode", LinkOption.NOFOLLOW_LINKS);
            } catch (IOException | UnsupportedOperationException e) {
                throw new VhostUserException("cannot inspect existing '" + path + "': " + e.getMessage());
            }
            if ((mode & S_IFMT) != S_IFSOCK) {
                throw new VhostUserException("'" + path + "' exists and is not a socket; refusing to replace it");
            }
            try (UnixSocket probe = tryConnect(path)) {
                if (probe != null) {
                    throw new VhostUserException("'" + path + "' is in use: another server accepts connections on it");
                }
            }
            try {
                Files.deleteIfExists(path);
            } catch (IOException e) {
                throw new VhostUserException("cannot remove the stale socket '" + path + "': " + e.getMessage());
            }
        }
        int s = SocketCalls.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0) {
            throw failure("socket(AF_UNIX)", path.toString(), SocketCalls.errno());
        }
        if (SocketCalls.bind(s, addr, SOCKADDR_UN_SIZE) < 0) {
            int err = SocketCalls.errno();
            SocketCalls.close(s);
            throw failure("bind", path.toString(), err);
        }
        if (SocketCalls.listen(s, backlog) < 0) {
            int err = SocketCalls.errno();
            SocketCalls.close(s);
            throw failure("listen", path.toString(), err);
        }
        return new UnixSocket(s, path.toString());
    }

    /** Connects to {@code path} (a blocking socket). */
    public static UnixSocket connect(Path path) {
        Memory addr = sockaddr(path);
        int s = SocketCalls.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0) {
            throw failure("socket(AF_UNIX)", path.toString(), SocketCalls.errno());
        }
        if (SocketCalls.connect(s, addr, SOCKADDR_UN_SIZE) < 0) {
            int err = SocketCalls.errno();
            SocketCalls.close(s);
            String hint = err == Errno.ENOENT ? " (no such socket: is a vhost-user back-end listening there?)"
                    : err == 111 ? " (connection refused: nothing accepts on it; a stale socket file?)" : "";
            throw new VhostUserException("cannot connect to '" + path + "': " + Errno.name(err)
                    + (err == 111 ? " (ECONNREFUSED)" : "") + hint);
        }
        return new UnixSocket(s, path.toString());
    }

    /** Connects, or returns null when nobody accepts on {@code path}. */
    public static UnixSocket tryConnect(Path path) {
        try {
            return connect(path);
        } catch (VhostUserException e) {
            return null;
        }
    }

    /** A connected pair (tests; the back-end channel). */
    static UnixSocket[] pair() {
        Memory sv = new Memory(8);
        if (SocketPair.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
            throw failure("socketpair", "", SocketCalls.errno());
        }
        return new UnixSocket[] {new UnixSocket(sv.getInt(0), "socketpair[0]"),
            new UnixSocket(sv.getInt(4), "socketpair[1]")};
    }

    /** Wraps a descriptor received from a peer (SET_BACKEND_REQ_FD). */
    static UnixSocket adopt(int fd, String name) {
        return new UnixSocket(fd, name);
    }

    /** Accepts one connection (a blocking socket), or returns null if none is pending. */
    public UnixSocket accept() {
        int c = SocketCalls.accept4(fd, Pointer.NULL, Pointer.NULL, SOCK_CLOEXEC);
        if (c < 0) {
            int err = SocketCalls.errno();
            if (err == SocketCalls.EAGAIN || err == SocketCalls.EINTR) {
                return null;
            }
            throw failure("accept4", name, err);
        }
        return new UnixSocket(c, name + "#" + c);
    }

    /** Bounds blocking sends and receives (SO_SNDTIMEO, SO_RCVTIMEO); zero means no bound. */
    public void setTimeouts(Duration receive, Duration send) {
        setTimeout(SocketCalls.SO_RCVTIMEO, receive);
        setTimeout(SocketCalls.SO_SNDTIMEO, send);
    }

    private void setTimeout(int opt, Duration d) {
        Memory tv = new Memory(16);
        tv.setLong(0, d.getSeconds());
        tv.setLong(8, d.getNano() / 1000);
        if (SocketCalls.setsockopt(fd, SOL_SOCKET, opt, tv, 16) < 0) {
            throw failure("setsockopt(SO_" + (opt == SocketCalls.SO_RCVTIMEO ? "RCV" : "SND") + "TIMEO)", name,
                    SocketCalls.errno());
        }
    }

    /** The peer's process id (SO_PEERCRED), or -1. */
    public int peerPid() {
        Memory cred = new Memory(12);
        Memory len = new Memory(4);
        len.setInt(0, 12);
        if (SocketCalls.getsockopt(fd, SOL_SOCKET, SocketCalls.SO_PEERCRED, cred, len) < 0) {
            return -1;
        }
        return cred.getInt(0);
    }

    /**
     * Sends {@code len} bytes of {@code data}, the descriptors riding on the
     * first byte (one {@code sendmsg}; the rest, if the kernel took less, in
     * further calls without descriptors).
     */
    public void send(byte[] data, int len, int[] fds) {
        send(data, len, fds, 0);
    }

    /**
     * Sends without ever waiting (MSG_DONTWAIT): a peer whose receive buffer
     * is full is not reading what it asked for, and the send fails with a
     * message saying so instead of blocking the caller's thread.
     */
    public void sendNow(byte[] data, int len, int[] fds) {
        send(data, len, fds, SocketCalls.MSG_DONTWAIT);
    }

    private void send(byte[] data, int len, int[] fds, int extraFlags) {
        if (fds != null && fds.length > MAX_FDS) {
            throw new IllegalArgumentException(fds.length + " descriptors in one message (at most " + MAX_FDS + ")");
        }
        if (len > CHUNK) {
            throw new IllegalArgumentException("message of " + len + " bytes exceeds " + CHUNK);
        }
        synchronized (sendLock) {
            checkOpen();
            sendBuf.write(0, data, 0, len);
            int done = 0;
            boolean withFds = fds != null && fds.length > 0;
            while (done < len) {
                sendMsg.clear();
                sendIov.setPointer(0, sendBuf.share(done));
                sendIov.setLong(8, len - done);
                sendMsg.setPointer(16, sendIov);
                sendMsg.setLong(24, 1);
                if (withFds) {
                    int n = fds.length;
                    sendCtl.clear();
                    sendCtl.setLong(0, CMSG_HDR_SIZE + 4L * n);
                    sendCtl.setInt(8, SOL_SOCKET);
                    sendCtl.setInt(12, SocketCalls.SCM_RIGHTS);
                    for (int i = 0; i < n; i++) {
                        sendCtl.setInt(CMSG_HDR_SIZE + 4L * i, fds[i]);
                    }
                    sendMsg.setPointer(32, sendCtl);
                    sendMsg.setLong(40, CMSG_HDR_SIZE + ((4L * n + 7) & ~7L));
                }
                long r = SocketCalls.sendmsg(fd, sendMsg, SocketCalls.MSG_NOSIGNAL | extraFlags);
                if (r < 0) {
                    int err = SocketCalls.errno();
                    if (err == SocketCalls.EINTR) {
                        continue;
                    }
                    if (err == SocketCalls.EAGAIN && extraFlags != 0) {
                        throw new VhostUserException(name + ": the peer's receive buffer is full after " + done
                                + " of " + len + " bytes (it does not read what it asked for)");
                    }
                    if (err == SocketCalls.EAGAIN) {
                        throw new VhostUserException(name + ": send timed out (the peer does not read)");
                    }
                    throw failure("sendmsg", name, err);
                }
                done += (int) r;
                withFds = false;
            }
        }
    }

    /**
     * Receives exactly {@code len} bytes into {@code dst}; descriptors that
     * arrive meanwhile are appended to {@code fds} (or closed when it is null).
     * Returns false on a clean end of file before the first byte.
     *
     * @throws VhostUserException on a timeout, an error, or end of file mid-message
     */
    public boolean receiveFully(byte[] dst, int off, int len, List<Integer> fds) {
        synchronized (recvLock) {
            int done = 0;
            while (done < len) {
                int n = receiveOnce(dst, off + done, len - done, fds);
                if (n == 0) {
                    if (done == 0) {
                        return false;
                    }
                    throw new VhostUserException(name + ": the peer closed the connection in the middle of a message",
                            true);
                }
                done += n;
            }
            return true;
        }
    }

    /**
     * Receives what is there, up to {@code len} bytes, without waiting
     * (MSG_DONTWAIT): the count, 0 at end of file, or -1 when nothing is
     * there yet. Descriptors that arrive are appended to {@code fds}.
     */
    public int receiveNow(byte[] dst, int off, int len, List<Integer> fds) {
        synchronized (recvLock) {
            return receive(dst, off, len, fds, SocketCalls.MSG_DONTWAIT);
        }
    }

    private int receiveOnce(byte[] dst, int off, int len, List<Integer> fds) {
        return receive(dst, off, len, fds, 0);
    }

    private int receive(byte[] dst, int off, int len, List<Integer> fds, int extraFlags) {
        checkOpen();
        int want = Math.min(len, CHUNK);
        for (;;) {
            recvMsg.clear();
            recvIov.setPointer(0, recvBuf);
            recvIov.setLong(8, want);
            recvMsg.setPointer(16, recvIov);
            recvMsg.setLong(24, 1);
            recvCtl.clear();
            recvMsg.setPointer(32, recvCtl);
            recvMsg.setLong(40, CONTROL_SIZE);
            long r = SocketCalls.recvmsg(fd, recvMsg, SocketCalls.MSG_CMSG_CLOEXEC | extraFlags);
            if (r < 0) {
                int err = SocketCalls.errno();
                if (err == SocketCalls.EINTR) {
                    continue;
                }
                if (err == SocketCalls.EAGAIN && extraFlags != 0) {
                    return -1;
                }
                if (err == SocketCalls.EAGAIN) {
                    throw new VhostUserException(name + ": no data within the receive timeout");
                }
                if (err == SocketCalls.ECONNRESET) {
                    throw new VhostUserException(name + ": connection reset by the peer", true);
                }
                throw failure("recvmsg", name, err);
            }
            collectFds(fds);
            if (r > 0) {
                recvBuf.read(0, dst, off, (int) r);
            }
            return (int) r;
        }
    }

    private void collectFds(List<Integer> fds) {
        long ctlLen = recvMsg.getLong(40);
        int flags = recvMsg.getInt(48);
        long pos = 0;
        while (pos + CMSG_HDR_SIZE <= ctlLen) {
            long cmsgLen = recvCtl.getLong(pos);
            int level = recvCtl.getInt(pos + 8);
            int type = recvCtl.getInt(pos + 12);
            if (cmsgLen < CMSG_HDR_SIZE || pos + cmsgLen > ctlLen) {
                break;
            }
            if (level == SOL_SOCKET && type == SocketCalls.SCM_RIGHTS) {
                int n = (int) ((cmsgLen - CMSG_HDR_SIZE) / 4);
                for (int i = 0; i < n; i++) {
                    int f = recvCtl.getInt(pos + CMSG_HDR_SIZE + 4L * i);
                    if (fds != null) {
                        fds.add(f);
                    } else {
                        SocketCalls.close(f);
                    }
                }
            }
            pos += (cmsgLen + 7) & ~7L;
        }
        if ((flags & SocketCalls.MSG_CTRUNC) != 0 && fds != null) {
            fds.add(-1); // marker: the kernel dropped descriptors that did not fit
        }
    }

    /** Sets or clears O_NONBLOCK. */
    public void setNonBlocking(boolean on) {
        int fl = SocketCalls.fcntl(fd, SocketCalls.F_GETFL, 0);
        if (fl < 0 || SocketCalls.fcntl(fd, SocketCalls.F_SETFL,
                on ? fl | SocketCalls.O_NONBLOCK : fl & ~SocketCalls.O_NONBLOCK) < 0) {
            throw failure("fcntl(O_NONBLOCK)", name, SocketCalls.errno());
        }
    }

    /** Shuts both directions down, so a thread blocked in a receive returns end of file. */
    public void shutdown() {
        if (!closed) {
            SocketCalls.shutdown(fd, SocketCalls.SHUT_RDWR);
        }
    }

    public boolean isClosed() {
        return closed;
    }

    private void checkOpen() {
        if (closed) {
            throw new VhostUserException(name + ": socket is closed", true);
        }
    }

    @Override
    public void close() {
        shutdown(); // a thread blocked in a receive or send returns at once instead of holding its lock
        synchronized (sendLock) {
            synchronized (recvLock) {
                if (closed) {
                    return;
                }
                closed = true;
                SocketCalls.close(fd);
            }
        }
    }

    /**
     * Closes this descriptor only, without shutting the socket down: for a
     * socket whose copy was passed to a peer (SET_BACKEND_REQ_FD), which keeps
     * using it. {@link #close()} would end the connection for both.
     */
    public void closeDescriptorOnly() {
        synchronized (sendLock) {
            synchronized (recvLock) {
                if (closed) {
                    return;
                }
                closed = true;
                SocketCalls.close(fd);
            }
        }
    }

    static VhostUserException failure(String call, String what, int err) {
        boolean gone = err == SocketCalls.EPIPE || err == SocketCalls.ECONNRESET;
        return new VhostUserException(call + "(" + what + ") failed: " + Errno.name(err)
                + (gone ? " (the peer went away)" : ""), gone);
    }

    @Override
    public String toString() {
        return "UnixSocket(" + name + ", fd " + fd + ")";
    }

    /** socketpair(2), separate so the common calls stay in {@link SocketCalls}. */
    static final class SocketPair {
        static {
            com.sun.jna.Native.register(com.sun.jna.Platform.C_LIBRARY_NAME);
        }

        private SocketPair() {
        }

        static native int socketpair(int domain, int type, int protocol, Pointer sv);
    }
}
