package io.vblk.aio;

/**
 * An fd monitor of one {@link AioContext}: QEMU's {@code FDMonOps}
 * (util/aio-posix.h), the part of {@code aio_poll} that waits for ready fds.
 * {@link AioHandlers} keeps it up to date with every registration (QEMU's
 * {@code ->update}); {@link AioPoll} waits in it ({@code ->wait}). Each
 * registration carries a 64-bit tag ({@link AioHandler#epollData()} or
 * {@link AioNotifier#EPOLL_DATA}) that comes back with its events, as
 * EPOLL* bits whatever the monitor.
 */
interface FdMon {
    /** Starts watching {@code fd} for {@code events} (0: registered, masked). */
    void add(int fd, int events, long data);

    /** Changes what is watched on {@code fd}; 0 masks it while keeping it registered. */
    void modify(int fd, int events, long data);

    /** Stops watching {@code fd}; tolerates an fd that is not (or no longer) registered. */
    void delete(int fd);

    /**
     * Waits for ready fds into {@code events} (one buffer per thread that may
     * wait at the same time): 0 polls without blocking, a negative timeout
     * waits without limit. Returns how many are ready; a signal counts as none.
     */
    int wait(FdMonEvents events, long timeoutNs);

    /** Whether {@code fd} is registered here (masked or not): the diagnosis of a handler whose events never arrive. */
    boolean watches(int fd);

    FdMonMode mode();

    /** Frees the monitor's kernel resources; only once no thread can wait in it any more. */
    void close();
}
