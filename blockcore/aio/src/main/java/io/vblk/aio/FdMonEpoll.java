package io.vblk.aio;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import java.util.BitSet;

/**
 * The epoll instance of one {@link AioContext}: QEMU's fdmon-epoll
 * (util/fdmon-epoll.c, {@code fdmon_epoll_update} and {@code fdmon_epoll_wait}).
 * It keeps the kernel's interest set (the fd handlers and the context's own
 * eventfd) and waits for ready fds. Each registration carries a 64-bit tag
 * ({@link AioHandler#epollData()} or {@link AioNotifier#EPOLL_DATA}) that
 * comes back with its events. Waits use {@link EpollPwait2} for a nanosecond
 * timeout where libc has it, else {@code epoll_wait} rounded up to milliseconds.
 * A context in poll mode gets one when {@link AioHandlers#tryEpollUpgrade}
 * switches it over ({@code fdmon_epoll_try_upgrade}).
 */
final class FdMonEpoll implements FdMon {
    static final int MAX_EVENTS = FdMonEvents.MAX_EVENTS;

    private final String ctxName;
    private final int epfd;
    /** The blocking wait's timeout; only the home thread waits with one. */
    private final Memory timespec = new Memory(16);
    /** The argument of epoll_ctl; guarded by this monitor. */
    private final Memory ctlEvent = new Memory(LibC.EPOLL_EVENT_SIZE);
    /** The fds in the interest set, as vblk registered them (for diagnostics); guarded by this monitor. */
    private final BitSet registered = new BitSet();

    FdMonEpoll(String ctxName) {
        this.ctxName = ctxName;
        this.epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
    }

    @Override
    public synchronized void add(int fd, int events, long data) {
        ctl(LibC.EPOLL_CTL_ADD, fd, events, data);
        registered.set(fd);
    }

    @Override
    public synchronized void modify(int fd, int events, long data) {
        ctl(LibC.EPOLL_CTL_MOD, fd, events, data);
    }

    /** Stops watching {@code fd}; tolerates an fd its owner already closed (the kernel dropped it then). */
    @Override
    public synchronized void delete(int fd) {
        registered.clear(fd);
        if (LibC.epoll_ctl(epfd, LibC.EPOLL_CTL_DEL, fd, Pointer.NULL) < 0) {
            int err = LibC.errno();
            if (err != Errno.EBADF && err != Errno.ENOENT) {
                throw new NativeException("epoll_ctl(DEL, " + fd + ")", err);
            }
        }
    }

    @Override
    public synchronized boolean watches(int fd) {
        return fd >= 0 && registered.get(fd);
    }

    @Override
    public FdMonMode mode() {
        return FdMonMode.EPOLL;
    }

    private void ctl(int op, int fd, int events, long data) {
        ctlEvent.setInt(0, events);
        ctlEvent.setLong(4, data);
        LibC.check(LibC.epoll_ctl(epfd, op, fd, ctlEvent), "epoll_ctl(" + op + ", fd " + fd + ")");
    }

    /**
     * Waits for ready fds into {@code events}: 0 polls without blocking, a
     * negative timeout waits without limit. Returns how many are ready; a
     * signal (EINTR) counts as none.
     */
    @Override
    public int wait(FdMonEvents events, long timeoutNs) {
        int r;
        if (timeoutNs == 0) {
            r = LibC.epoll_wait(epfd, events.mem, MAX_EVENTS, 0);
        } else if (EpollPwait2.AVAILABLE) {
            Pointer ts = Pointer.NULL;
            if (timeoutNs > 0) {
                timespec.setLong(0, timeoutNs / 1_000_000_000L);
                timespec.setLong(8, timeoutNs % 1_000_000_000L);
                ts = timespec;
            }
            r = EpollPwait2.epoll_pwait2(epfd, events.mem, MAX_EVENTS, ts, Pointer.NULL);
        } else {
            int ms = timeoutNs < 0 ? -1 : (int) Math.min(Integer.MAX_VALUE, (timeoutNs + 999_999) / 1_000_000);
            r = LibC.epoll_wait(epfd, events.mem, MAX_EVENTS, ms);
        }
        if (r < 0) {
            int err = LibC.errno();
            if (err == LibC.EINTR) {
                return 0;
            }
            throw new NativeException("epoll_wait(" + ctxName + ")", err);
        }
        return r;
    }

    /** Closes the epoll fd; only once no thread can wait any more. */
    @Override
    public void close() {
        LibC.close(epfd);
    }
}
