package io.vblk.aio;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * The few libc calls the event loop needs, bound through JNA direct mapping
 * ({@link Native#register}) so each call costs a plain JNI transition rather
 * than a proxy dispatch. Errors are reported through {@link #check}, which
 * reads errno with {@link Native#getLastError()}.
 */
public final class LibC {
    static {
        Native.register(Platform.C_LIBRARY_NAME);
    }

    private LibC() {
    }

    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;
    public static final int EPOLL_CLOEXEC = 0x80000;
    public static final int EPOLL_CTL_ADD = 1;
    public static final int EPOLL_CTL_DEL = 2;
    public static final int EPOLL_CTL_MOD = 3;
    public static final int EPOLLIN = 0x001;
    public static final int EPOLLOUT = 0x004;
    public static final int EPOLLERR = 0x008;
    public static final int EPOLLHUP = 0x010;
    public static final int POLLIN = 0x001;
    public static final int POLLOUT = 0x004;
    public static final int POLLERR = 0x008;
    public static final int POLLHUP = 0x010;
    public static final int POLLNVAL = 0x020;
    public static final int EAGAIN = 11;
    public static final int EINTR = 4;

    /** Size of the packed x86-64 {@code struct epoll_event}: u32 events, u64 data at offset 4. */
    public static final int EPOLL_EVENT_SIZE = 12;

    public static native int eventfd(int initval, int flags);

    public static native int eventfd_write(int fd, long value);

    public static native int eventfd_read(int fd, Pointer value);

    public static native int close(int fd);

    public static native int epoll_create1(int flags);

    public static native int epoll_ctl(int epfd, int op, int fd, Pointer event);

    public static native int epoll_wait(int epfd, Pointer events, int maxevents, int timeoutMs);

    /** ppoll(2): {@code fds} is an array of {@code struct pollfd} (int fd, short events, short revents). */
    public static native int ppoll(Pointer fds, long nfds, Pointer timeout, Pointer sigmask);

    public static native long read(int fd, Pointer buf, long count);

    public static native long write(int fd, Pointer buf, long count);

    /** Throws a {@link NativeException} naming {@code call} when {@code ret} is negative. */
    public static int check(int ret, String call) {
        if (ret < 0) {
            throw new NativeException(call, Native.getLastError());
        }
        return ret;
    }

    public static int errno() {
        return Native.getLastError();
    }
}
