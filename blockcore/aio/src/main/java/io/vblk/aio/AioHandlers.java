package io.vblk.aio;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.ReentrantLock;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The fd handlers of one {@link AioContext}: QEMU's {@code ctx->aio_handlers}
 * as {@code aio_set_fd_handler} maintains them (util/aio-posix.c), and the
 * external-client switch of {@code aio_disable_external} /
 * {@code aio_enable_external} with the masking of external fds that
 * QEMU's poller did by leaving them out of each iteration's fd set.
 *
 * <p>Handlers sit in slots of an array indexed by their epoll tag; the arrays
 * are copied on write under the list lock (QEMU's {@code ctx->list_lock}), so
 * the poll loop reads them without one. A slot's generation tells an event of
 * a removed handler from one of the handler that reuses the slot.
 *
 * <p>It also owns the context's fd monitor ({@code ctx->fdmon_ops}): every
 * registration goes through the current one, and a context in poll mode is
 * upgraded to epoll here ({@link #tryEpollUpgrade()}, bug 008).
 */
final class AioHandlers {
    private static final Logger LOG = LoggerFactory.getLogger(AioHandlers.class);

    private final AioContext ctx;
    /** The context's own eventfd, watched by every fd monitor with {@link AioNotifier#EPOLL_DATA}. */
    private final int notifierFd;
    /** QEMU's {@code ctx->fdmon_ops}: replaced once, by the upgrade; written under the list lock (pre-fix: not). */
    private volatile FdMon fdmon;
    /** QEMU's {@code ctx->list_lock}; a ReentrantLock so the upgrade can try it and a registration can see it busy. */
    private final ReentrantLock lock = new ReentrantLock();
    /** Test seam (null: none). */
    volatile FdMonSeam seam;
    /** The poll set's size when the context switched to epoll; 0 while it has not. */
    private volatile int upgradedAt;
    /** Set when an upgrade failed (QEMU's {@code fdmon_epoll_disable}): the context stays in poll mode. */
    private volatile boolean upgradeDisabled;

    /** By slot; null where a handler was removed. Replaced, never written in place. */
    volatile AioHandler[] handlers = new AioHandler[0];
    /** The armed handlers with an ioPoll, for busy polling. */
    volatile AioHandler[] pollHandlers = new AioHandler[0];
    /** Armed handlers that cannot be polled: if any, polling success must still be followed by epoll_wait(0). */
    volatile int pollDisableCount;
    volatile int externalDisableCount; // written under lock
    private volatile boolean externalMasked; // written under lock
    private int nextGeneration; // guarded by lock
    private final ArrayList<Integer> freeSlots = new ArrayList<>(); // guarded by lock

    AioHandlers(AioContext ctx, FdMon fdmon, int notifierFd) {
        this.ctx = ctx;
        this.fdmon = fdmon;
        this.notifierFd = notifierFd;
        fdmon.add(notifierFd, LibC.EPOLLIN, AioNotifier.EPOLL_DATA);
    }

    /** The current fd monitor. */
    FdMon fdmon() {
        return fdmon;
    }

    /** The poll set's size at which the context switched from poll to epoll; 0 if it never did. */
    int upgradedAt() {
        return upgradedAt;
    }

    /** Takes the list lock, telling the seam when a registration has to wait for it. */
    private void lockList(String name) {
        if (lock.tryLock()) {
            return;
        }
        FdMonSeam s = seam;
        if (s != null) {
            s.listLockBusy(name);
        }
        lock.lock();
    }

    /**
     * A registration by another thread must wake a home thread asleep in
     * ppoll: unlike epoll's interest set, its poll set is the one it started
     * with (QEMU's {@code aio_set_fd_handler} always ends with {@code aio_notify}).
     */
    private void wakeIfPolling(FdMon used) {
        if (used.mode() == FdMonMode.POLL && Thread.currentThread() != ctx.homeThread()) {
            ctx.aioNotify();
        }
    }

    /** QEMU's {@code aio_set_fd_handler}. Caller is the home thread or holds the context lock. */
    AioHandler set(AioHandler.Builder b) {
        AioHandler probe = new AioHandler(ctx, b, -1, 0);
        FdMonSeam s = seam;
        if (s != null) {
            s.registering(probe.name);
        }
        AioHandler added;
        FdMon used;
        lockList(probe.name);
        try {
            AioHandler[] hs = handlers;
            for (AioHandler h : hs) {
                if (h != null && h.fd == probe.fd && !h.deleted) {
                    removeLocked(h);
                }
            }
            hs = handlers;
            int slot = freeSlots.isEmpty() ? hs.length : freeSlots.remove(freeSlots.size() - 1);
            AioHandler h = new AioHandler(ctx, b, slot, nextGeneration++ & 0x7fffffff);
            int ev = h.external && externalMasked ? 0 : h.wantedEvents();
            used = fdmon;
            used.add(h.fd, ev, h.epollData());
            h.armedEvents = ev;
            AioHandler[] n = slot < hs.length ? hs.clone() : Arrays.copyOf(hs, slot + 1);
            n[slot] = h;
            handlers = n;
            rebuildPollSets();
            added = h;
        } finally {
            lock.unlock();
        }
        wakeIfPolling(used);
        if (s != null) {
            s.registered(probe.name, used.mode());
        }
        return added;
    }

    /** Caller is the home thread or holds the context lock. */
    void remove(AioHandler h) {
        FdMon used;
        lockList(h.name);
        try {
            used = fdmon;
            removeLocked(h);
        } finally {
            lock.unlock();
        }
        wakeIfPolling(used);
    }

    private void removeLocked(AioHandler h) {
        if (h.deleted) {
            return;
        }
        h.deleted = true;
        if (h.pollBegun) {
            h.pollBegun = false;
            if (h.ioPollEnd != null) {
                ctx.runCallback(h.ioPollEnd, h.name);
            }
        }
        fdmon.delete(h.fd);
        AioHandler[] n = handlers.clone();
        n[h.slot] = null;
        handlers = n;
        freeSlots.add(h.slot);
        rebuildPollSets();
    }

    private void rebuildPollSets() {
        List<AioHandler> ph = new ArrayList<>();
        int disable = 0;
        for (AioHandler h : handlers) {
            if (h == null || h.deleted || h.armedEvents == 0) {
                continue;
            }
            if (h.ioPoll != null) {
                ph.add(h);
            } else {
                disable++;
            }
        }
        pollHandlers = ph.toArray(new AioHandler[0]);
        pollDisableCount = disable;
    }

    List<AioHandler> list() {
        List<AioHandler> l = new ArrayList<>();
        for (AioHandler h : handlers) {
            if (h != null && !h.deleted) {
                l.add(h);
            }
        }
        return l;
    }

    /** The live handlers the current fd monitor does not watch: their events never arrive (bug 008's symptom). */
    List<AioHandler> unwatched() {
        FdMon m = fdmon;
        List<AioHandler> l = new ArrayList<>();
        for (AioHandler h : handlers) {
            if (h != null && !h.deleted && !m.watches(h.fd)) {
                l.add(h);
            }
        }
        return l;
    }

    /** Marks every handler deleted and forgets them, as the context closes; frees the fd monitor. */
    void deleteAll() {
        lock.lock();
        try {
            for (AioHandler h : handlers) {
                if (h != null) {
                    h.deleted = true;
                }
            }
            handlers = new AioHandler[0];
            pollHandlers = new AioHandler[0];
            fdmon.close();
        } finally {
            lock.unlock();
        }
    }

    // ------------------------------------------------------------------ the epoll upgrade

    /**
     * QEMU's {@code fdmon_epoll_try_upgrade}: once a context in poll mode
     * watches the threshold's number of fds, its home thread registers every
     * handler (and the context's eventfd) in a fresh epoll instance and makes
     * it the context's fd monitor. Called by the home thread in its wait, where
     * it holds no context lock, so another thread may be registering a handler
     * at the same time (the main thread attaching a host notifier at
     * dataplane start).
     *
     * <p>The fix (e62da98527) holds the list lock from the copy to the switch:
     * a concurrent registration lands before the copy (and is copied) or after
     * the switch (and goes through epoll). If the lock is busy, the upgrade
     * waits for a later wait rather than for the lock (QEMU: the list lock
     * cannot be taken while the list is walked, as in a nested event loop).
     * {@link LegacyBehavior#EPOLL_UPGRADE_WITHOUT_LIST_LOCK} copies without the
     * lock: a handler registered between the copy and the switch goes to the
     * poll table, which nobody waits in any more, and the epoll never watches it.
     *
     * @return whether the context's fd monitor is epoll now
     */
    boolean tryEpollUpgrade() {
        FdMon cur = fdmon;
        if (!(cur instanceof FdMonPoll) || upgradeDisabled || !((FdMonPoll) cur).wantsUpgrade()) {
            return false;
        }
        FdMonPoll poll = (FdMonPoll) cur;
        boolean locked = !ctx.legacy().isOn(LegacyBehavior.EPOLL_UPGRADE_WITHOUT_LIST_LOCK);
        if (locked && !lock.tryLock()) {
            return false;
        }
        try {
            int at = poll.armedCount();
            AioHandler[] snapshot = handlers;
            FdMonEpoll epoll = new FdMonEpoll(ctx.name());
            try {
                epoll.add(notifierFd, LibC.EPOLLIN, AioNotifier.EPOLL_DATA);
                for (AioHandler h : snapshot) {
                    if (h != null && !h.deleted) {
                        epoll.add(h.fd, h.armedEvents, h.epollData());
                    }
                }
            } catch (NativeException e) {
                // QEMU's fdmon_epoll_disable: stay in poll mode for good.
                epoll.close();
                upgradeDisabled = true;
                LOG.warn("AioContext '{}': epoll upgrade failed ({}); staying in poll mode", ctx.name(), e.getMessage());
                return false;
            }
            FdMonSeam s = seam;
            if (s != null) {
                s.upgradeWindow();
            }
            fdmon = epoll;
            upgradedAt = at;
            LOG.debug("AioContext '{}': fd monitor upgraded from ppoll to epoll at {} fds", ctx.name(), at);
            return true;
        } finally {
            if (locked) {
                lock.unlock();
            }
        }
    }

    // ------------------------------------------------------------------ external clients

    void disableExternal() {
        lock.lock();
        try {
            externalDisableCount++;
        } finally {
            lock.unlock();
        }
    }

    /** Returns whether this was the last enable, after which the loop must be kicked to re-arm the fds. */
    boolean enableExternal() {
        lock.lock();
        try {
            if (externalDisableCount == 0) {
                throw new IllegalStateException(ctx.name() + ": enableExternal without disableExternal");
            }
            return --externalDisableCount == 0;
        } finally {
            lock.unlock();
        }
    }

    boolean isExternalMasked() {
        return externalMasked;
    }

    /**
     * Brings the kernel's interest set in line with the disable count, as
     * QEMU's poller rebuilt its fd set on each iteration: external fds are
     * masked while disabled and re-armed by the first poll after enable.
     * Home thread only.
     */
    void updateExternalArming() {
        boolean want = externalDisableCount > 0;
        if (want == externalMasked) {
            return;
        }
        lock.lock();
        try {
            want = externalDisableCount > 0;
            if (want == externalMasked) {
                return;
            }
            externalMasked = want;
            FdMon m = fdmon;
            for (AioHandler h : handlers) {
                if (h != null && h.external && !h.deleted) {
                    int ev = want ? 0 : h.wantedEvents();
                    m.modify(h.fd, ev, h.epollData());
                    h.armedEvents = ev;
                }
            }
            rebuildPollSets();
        } finally {
            lock.unlock();
        }
    }
}
