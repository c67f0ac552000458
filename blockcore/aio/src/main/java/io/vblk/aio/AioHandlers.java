package io.vblk.aio;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * The fd handlers of one {@link AioContext}: QEMU's {@code ctx->aio_handlers}
 * as {@code aio_set_fd_handler} maintains them (util/aio-posix.c), and the
 * external-client switch of {@code aio_disable_external} /
 * {@code aio_enable_external} with the masking of external fds that
 * QEMU's poller did by leaving them out of each iteration's fd set.
 *
 * <p>Handlers sit in slots of an array indexed by their epoll tag; the arrays
 * are copied on write under a private lock, so the poll loop reads them
 * without one. A slot's generation tells an event of a removed handler from
 * one of the handler that reuses the slot.
 */
final class AioHandlers {
    private final AioContext ctx;
    private final FdMonEpoll fdmon;
    private final Object lock = new Object();

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

    AioHandlers(AioContext ctx, FdMonEpoll fdmon) {
        this.ctx = ctx;
        this.fdmon = fdmon;
    }

    /** QEMU's {@code aio_set_fd_handler}. Caller is the home thread or holds the context lock. */
    AioHandler set(AioHandler.Builder b) {
        synchronized (lock) {
            AioHandler[] hs = handlers;
            AioHandler probe = new AioHandler(ctx, b, -1, 0);
            for (AioHandler h : hs) {
                if (h != null && h.fd == probe.fd && !h.deleted) {
                    removeLocked(h);
                }
            }
            hs = handlers;
            int slot = freeSlots.isEmpty() ? hs.length : freeSlots.remove(freeSlots.size() - 1);
            AioHandler h = new AioHandler(ctx, b, slot, nextGeneration++ & 0x7fffffff);
            int ev = h.external && externalMasked ? 0 : h.wantedEvents();
            fdmon.add(h.fd, ev, h.epollData());
            h.armedEvents = ev;
            AioHandler[] n = slot < hs.length ? hs.clone() : Arrays.copyOf(hs, slot + 1);
            n[slot] = h;
            handlers = n;
            rebuildPollSets();
            return h;
        }
    }

    /** Caller is the home thread or holds the context lock. */
    void remove(AioHandler h) {
        synchronized (lock) {
            removeLocked(h);
        }
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

    /** Marks every handler deleted and forgets them, as the context closes. */
    void deleteAll() {
        synchronized (lock) {
            for (AioHandler h : handlers) {
                if (h != null) {
                    h.deleted = true;
                }
            }
            handlers = new AioHandler[0];
            pollHandlers = new AioHandler[0];
        }
    }

    // ------------------------------------------------------------------ external clients

    void disableExternal() {
        synchronized (lock) {
            externalDisableCount++;
        }
    }

    /** Returns whether this was the last enable, after which the loop must be kicked to re-arm the fds. */
    boolean enableExternal() {
        synchronized (lock) {
            if (externalDisableCount == 0) {
                throw new IllegalStateException(ctx.name() + ": enableExternal without disableExternal");
            }
            return --externalDisableCount == 0;
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
        synchronized (lock) {
            want = externalDisableCount > 0;
            if (want == externalMasked) {
                return;
            }
            externalMasked = want;
            for (AioHandler h : handlers) {
                if (h != null && h.external && !h.deleted) {
                    int ev = want ? 0 : h.wantedEvents();
                    fdmon.modify(h.fd, ev, h.epollData());
                    h.armedEvents = ev;
                }
            }
            rebuildPollSets();
        }
    }
}
