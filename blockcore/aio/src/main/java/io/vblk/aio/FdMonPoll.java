package io.vblk.aio;

import com.sun.jna.Memory;
import com.sun.jna.Pointer;

import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * The ppoll(2) fd monitor of one {@link AioContext}: QEMU's fdmon-poll
 * (util/fdmon-poll.c), the mode QEMU starts every context in. It keeps the
 * registrations in a table (QEMU reads them from the handler list; vblk's
 * {@link AioHandlers} tells every monitor the same way) and each waiting
 * thread builds its {@code struct pollfd} array from that table in its own
 * {@link FdMonEvents}, again only after the table changed. Masked entries
 * (events 0: external handlers while drained) are left out of the array, as
 * QEMU's {@code aio_node_check} leaves them out.
 *
 * <p>Unlike epoll, a sleeping ppoll does not see a registration made after
 * it started: {@link AioHandlers} wakes the home thread after a change made
 * by another thread ({@link #wakeOnChange()}), as QEMU's
 * {@code aio_set_fd_handler} always calls {@code aio_notify}.
 *
 * <p>Once the context watches {@link #upgradeThreshold()} fds or more, its
 * home thread replaces this monitor with an {@link FdMonEpoll}
 * ({@link AioHandlers#tryEpollUpgrade}).
 */
final class FdMonPoll implements FdMon {
    private static final int POLLFD_SIZE = 8;
    /** The revents bits that mean "ready" (POLLIN, POLLOUT, POLLERR, POLLHUP are EPOLL*'s values). */
    private static final int READY = LibC.POLLIN | LibC.POLLOUT | LibC.POLLERR | LibC.POLLHUP;
    private static final Memory ZERO_TIMEOUT = new Memory(16);

    static {
        ZERO_TIMEOUT.clear();
    }

    private final String ctxName;
    private final int upgradeThreshold;
    // The registration table; guarded by this monitor.
    private int[] fds = new int[8];
    private int[] evs = new int[8];
    private long[] tags = new long[8];
    private int count;
    /** Bumped on every change of the table, so a waiter knows its pollfd array is stale. */
    private volatile int version;
    /** Entries with events != 0: the size of the poll set (QEMU's {@code npfd}). */
    private volatile int armed;

    FdMonPoll(String ctxName, int upgradeThreshold) {
        this.ctxName = ctxName;
        this.upgradeThreshold = upgradeThreshold;
    }

    int upgradeThreshold() {
        return upgradeThreshold;
    }

    /** How many fds the poll set holds now (QEMU's {@code npfd}). */
    int armedCount() {
        return armed;
    }

    /** Whether the context watches enough fds for epoll to be worth it. */
    boolean wantsUpgrade() {
        return armed >= upgradeThreshold;
    }

    @Override
    public synchronized void add(int fd, int events, long data) {
        if (indexOf(fd) >= 0) {
            throw new NativeException("ppoll set of " + ctxName + ": add fd " + fd, Errno.EEXIST);
        }
        if (count == fds.length) {
            fds = Arrays.copyOf(fds, count * 2);
            evs = Arrays.copyOf(evs, count * 2);
            tags = Arrays.copyOf(tags, count * 2);
        }
        fds[count] = fd;
        evs[count] = events;
        tags[count] = data;
        count++;
        changed();
    }

    @Override
    public synchronized void modify(int fd, int events, long data) {
        int i = indexOf(fd);
        if (i < 0) {
            throw new NativeException("ppoll set of " + ctxName + ": modify fd " + fd, Errno.ENOENT);
        }
        evs[i] = events;
        tags[i] = data;
        changed();
    }

    @Override
    public synchronized void delete(int fd) {
        int i = indexOf(fd);
        if (i < 0) {
            return;
        }
        count--;
        fds[i] = fds[count];
        evs[i] = evs[count];
        tags[i] = tags[count];
        changed();
    }

    @Override
    public synchronized boolean watches(int fd) {
        return indexOf(fd) >= 0;
    }

    @Override
    public FdMonMode mode() {
        return FdMonMode.POLL;
    }

    /** ppoll needs no kernel object. */
    @Override
    public void close() {
    }

    private int indexOf(int fd) {
        for (int i = 0; i < count; i++) {
            if (fds[i] == fd) {
                return i;
            }
        }
        return -1;
    }

    private void changed() {
        int a = 0;
        for (int i = 0; i < count; i++) {
            if (evs[i] != 0) {
                a++;
            }
        }
        armed = a;
        version++;
    }

    /** Copies the armed registrations into {@code ev}'s pollfd array (growing it only if it is too small). */
    private synchronized void rebuild(FdMonEvents ev) {
        int n = armed;
        if (ev.pollfds == null || ev.pollfds.size() < (long) n * POLLFD_SIZE) {
            int cap = Math.max(8, Integer.highestOneBit(Math.max(1, n - 1)) << 1);
            ev.pollfds = new Memory((long) cap * POLLFD_SIZE);
            ev.pollBuf = ev.pollfds.getByteBuffer(0, ev.pollfds.size()).order(ByteOrder.nativeOrder());
            ev.pollTags = new long[cap];
        }
        int j = 0;
        for (int i = 0; i < count; i++) {
            if (evs[i] == 0) {
                continue;
            }
            ev.pollBuf.putInt(j * POLLFD_SIZE, fds[i]);
            ev.pollBuf.putShort(j * POLLFD_SIZE + 4, (short) evs[i]);
            ev.pollBuf.putShort(j * POLLFD_SIZE + 6, (short) 0);
            ev.pollTags[j] = tags[i];
            j++;
        }
        ev.npfd = j;
        ev.scanStart = 0;
        ev.builtVersion = version;
    }

    /**
     * QEMU's {@code fdmon_poll_wait}: ppoll over the armed registrations with
     * a nanosecond timeout, then the ready ones into the ready list (at most
     * {@link FdMonEvents#MAX_EVENTS}; the rest stay ready for the next wait,
     * and the scan starts where the last one stopped so none is starved).
     */
    @Override
    public int wait(FdMonEvents ev, long timeoutNs) {
        if (ev.builtVersion != version) {
            rebuild(ev);
        }
        Pointer ts;
        if (timeoutNs < 0) {
            ts = Pointer.NULL;
        } else if (timeoutNs == 0) {
            ts = ZERO_TIMEOUT;
        } else {
            ev.timespec.setLong(0, timeoutNs / 1_000_000_000L);
            ev.timespec.setLong(8, timeoutNs % 1_000_000_000L);
            ts = ev.timespec;
        }
        int n = ev.npfd;
        int r = LibC.ppoll(ev.pollfds, n, ts, Pointer.NULL);
        if (r < 0) {
            int err = LibC.errno();
            if (err == LibC.EINTR) {
                return 0;
            }
            throw new NativeException("ppoll(" + ctxName + ")", err);
        }
        if (r == 0) {
            return 0;
        }
        int ready = 0;
        int start = ev.scanStart < n ? ev.scanStart : 0;
        for (int k = 0; k < n && ready < FdMonEvents.MAX_EVENTS; k++) {
            int j = start + k < n ? start + k : start + k - n;
            int revents = ev.pollBuf.getShort(j * POLLFD_SIZE + 6) & 0xffff;
            if (revents == 0) {
                continue;
            }
            if ((revents & LibC.POLLNVAL) != 0) {
                // Closed under its registration (the owner closes before it unregisters): epoll
                // drops such an fd by itself; leave it out of this waiter's set until the next
                // rebuild, or every ppoll would return at once.
                ev.pollBuf.putInt(j * POLLFD_SIZE, -1);
                continue;
            }
            ev.put(ready++, revents & READY, ev.pollTags[j]);
            ev.scanStart = j + 1;
        }
        return ready;
    }
}
