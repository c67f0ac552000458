package io.vblk.aio;

import java.util.function.BooleanSupplier;

/**
 * A file descriptor watched by an {@link AioContext}: QEMU's
 * {@code AioHandler} as registered with {@code aio_set_fd_handler}. Handlers
 * flagged {@code external} carry guest-originated events (ioeventfd kicks)
 * and are held back while the context's external clients are disabled
 * (a drained section).
 *
 * <p>A handler may also be <em>pollable</em>: {@code ioPoll} tells, without a
 * syscall, whether the fd's work is ready (a virtqueue's avail index moved),
 * {@code ioPollReady} handles that work, and {@code ioPollBegin}/{@code ioPollEnd}
 * bracket busy-polling so the peer can stop sending notifications meanwhile.
 */
public final class AioHandler {
    final AioContext ctx;
    final int fd;
    final String name;
    final boolean external;
    final Runnable ioRead;
    final Runnable ioWrite;
    final BooleanSupplier ioPoll;
    final Runnable ioPollReady;
    final Runnable ioPollBegin;
    final Runnable ioPollEnd;
    final int slot;
    final int generation;
    /** epoll events currently armed in the kernel (0 while masked). Guarded by the context's handler lock. */
    int armedEvents;
    volatile boolean deleted;
    /** Whether ioPollBegin ran without its ioPollEnd yet; guarded by the context lock. */
    boolean pollBegun;
    /** Set by the polling phase of one {@code poll} when ioPoll reported work; home thread only. */
    boolean pollReady;

    AioHandler(AioContext ctx, Builder b, int slot, int generation) {
        this.ctx = ctx;
        this.fd = b.fd;
        this.name = b.name;
        this.external = b.external;
        this.ioRead = b.ioRead;
        this.ioWrite = b.ioWrite;
        this.ioPoll = b.ioPoll;
        this.ioPollReady = b.ioPollReady != null ? b.ioPollReady : b.ioRead;
        this.ioPollBegin = b.ioPollBegin;
        this.ioPollEnd = b.ioPollEnd;
        this.slot = slot;
        this.generation = generation;
    }

    int wantedEvents() {
        return (ioRead != null ? LibC.EPOLLIN : 0) | (ioWrite != null ? LibC.EPOLLOUT : 0);
    }

    long epollData() {
        return ((long) generation << 32) | (slot & 0xffffffffL);
    }

    public int fd() {
        return fd;
    }

    public String name() {
        return name;
    }

    public boolean isExternal() {
        return external;
    }

    public boolean isPollable() {
        return ioPoll != null;
    }

    /** Removes this handler from its context: QEMU's {@code aio_set_fd_handler(ctx, fd, NULL, ...)}. */
    public void remove() {
        ctx.removeHandler(this);
    }

    @Override
    public String toString() {
        return name + "(fd=" + fd + (external ? ", external" : "") + (ioPoll != null ? ", pollable" : "")
                + (armedEvents == 0 ? ", masked" : "") + ")";
    }

    /** Describes a handler to register with {@link AioContext#setFdHandler(Builder)}. */
    public static final class Builder {
        private final int fd;
        private final String name;
        private boolean external;
        private Runnable ioRead;
        private Runnable ioWrite;
        private BooleanSupplier ioPoll;
        private Runnable ioPollReady;
        private Runnable ioPollBegin;
        private Runnable ioPollEnd;

        public Builder(String name, int fd) {
            this.name = name;
            this.fd = fd;
        }

        public Builder external(boolean external) {
            this.external = external;
            return this;
        }

        public Builder onRead(Runnable ioRead) {
            this.ioRead = ioRead;
            return this;
        }

        public Builder onWrite(Runnable ioWrite) {
            this.ioWrite = ioWrite;
            return this;
        }

        /** ioPoll reports ready work without a syscall; ioPollReady handles it (defaults to onRead). */
        public Builder poll(BooleanSupplier ioPoll, Runnable ioPollReady) {
            this.ioPoll = ioPoll;
            this.ioPollReady = ioPollReady;
            return this;
        }

        public Builder pollBeginEnd(Runnable begin, Runnable end) {
            this.ioPollBegin = begin;
            this.ioPollEnd = end;
            return this;
        }
    }
}
