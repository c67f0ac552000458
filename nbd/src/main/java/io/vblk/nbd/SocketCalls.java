package io.vblk.nbd;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * The libc socket calls the NBD server needs (x86-64 Linux numbering),
 * bound through JNA direct mapping like {@code io.vblk.aio.LibC}: every
 * socket is non-blocking and driven by an AioContext's fd handler, so none
 * of these ever waits.
 */
final class SocketCalls {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private SocketCalls() {
    }

    static final int AF_UNIX = 1;
    static final int AF_INET = 2;
    static final int AF_INET6 = 10;
    static final int SOCK_STREAM = 1;
    static final int SOCK_NONBLOCK = 0x800;
    static final int SOCK_CLOEXEC = 0x80000;
    static final int SOL_SOCKET = 1;
    static final int SO_REUSEADDR = 2;
    static final int IPPROTO_TCP = 6;
    static final int TCP_NODELAY = 1;
    static final int MSG_NOSIGNAL = 0x4000;
    static final int MSG_DONTWAIT = 0x40;
    static final int SHUT_RDWR = 2;

    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int ECONNRESET = 104;
    static final int EPIPE = 32;

    static native int socket(int domain, int type, int protocol);

    static native int bind(int fd, Pointer addr, int len);

    static native int listen(int fd, int backlog);

    static native int accept4(int fd, Pointer addr, Pointer len, int flags);

    static native int getsockname(int fd, Pointer addr, Pointer len);

    static native int setsockopt(int fd, int level, int name, Pointer value, int len);

    static native long recv(int fd, long buf, long len, int flags);

    static native long sendmsg(int fd, Pointer msg, int flags);

    static native int shutdown(int fd, int how);

    static native int close(int fd);

    static int errno() {
        return Native.getLastError();
    }
}
