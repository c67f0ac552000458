package io.vblk.vhost;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * The libc socket calls a vhost-user connection needs (x86-64 Linux
 * constants), bound through JNA direct mapping like {@code io.vblk.aio.LibC}.
 * Structures ({@code sockaddr_un}, {@code msghdr}, {@code iovec},
 * {@code cmsghdr}) are laid out by hand at raw offsets in {@link UnixSocket}.
 */
final class SocketCalls {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private SocketCalls() {
    }

    static final int AF_UNIX = 1;
    static final int SOCK_STREAM = 1;
    static final int SOCK_NONBLOCK = 0x800;
    static final int SOCK_CLOEXEC = 0x80000;
    static final int SOL_SOCKET = 1;
    static final int SCM_RIGHTS = 1;
    static final int SO_PEERCRED = 17;
    static final int SO_RCVTIMEO = 20;
    static final int SO_SNDTIMEO = 21;
    static final int MSG_CTRUNC = 0x8;
    static final int MSG_DONTWAIT = 0x40;
    static final int MSG_NOSIGNAL = 0x4000;
    static final int MSG_CMSG_CLOEXEC = 0x40000000;
    static final int SHUT_RDWR = 2;
    static final int F_GETFL = 3;
    static final int F_SETFL = 4;
    static final int O_NONBLOCK = 0x800;

    static final int EINTR = 4;
    static final int EAGAIN = 11;
    static final int EPIPE = 32;
    static final int ECONNRESET = 104;

    static native int socket(int domain, int type, int protocol);

    static native int bind(int fd, Pointer addr, int len);

    static native int listen(int fd, int backlog);

    static native int accept4(int fd, Pointer addr, Pointer len, int flags);

    static native int connect(int fd, Pointer addr, int len);

    static native long sendmsg(int fd, Pointer msg, int flags);

    static native long recvmsg(int fd, Pointer msg, int flags);

    static native int setsockopt(int fd, int level, int name, Pointer value, int len);

    static native int getsockopt(int fd, int level, int name, Pointer value, Pointer len);

    static native int shutdown(int fd, int how);

    static native int close(int fd);

    static native int fcntl(int fd, int cmd, int arg);

    /** fstat(2) into a {@code struct stat} (x86-64: st_mode u32 at 24, st_size s64 at 48; 144 bytes). */
    static native int fstat(int fd, Pointer statbuf);

    static final int STAT_SIZE = 144;
    static final int STAT_MODE = 24;
    static final int STAT_SIZE_OFFSET = 48;
    static final int S_IFMT = 0170000;
    static final int S_IFREG = 0100000;
    static final int S_IFSOCK = 0140000;

    static int errno() {
        return Native.getLastError();
    }
}
