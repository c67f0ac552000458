package io.vblk.aio;

/**
 * Step seams of fd-handler registration and of the fd monitor's upgrade
 * from poll to epoll ({@link AioContext#setFdMonSeam}), for tests and the
 * bug 008 scenario to stage the race of e62da98527 deterministically. Each
 * method runs in the thread at that step; the seams run the same way whatever
 * {@link LegacyBehavior} is on, so a failure that follows arises from what
 * the threads did, not from the seam.
 */
public interface FdMonSeam {
    /**
     * {@code aio_set_fd_handler} is about to register {@code name}, before it
     * takes the handler list's lock (the caller holds the context lock or is
     * the home thread).
     */
    default void registering(String name) {
    }

    /** The registration of {@code name} finds the handler list's lock held (an upgrade copies the list) and waits. */
    default void listLockBusy(String name) {
    }

    /** The registration of {@code name} is done, through the fd monitor named by {@code mode}. */
    default void registered(String name, FdMonMode mode) {
    }

    /**
     * The home thread's upgrade to epoll has copied the handler list into a
     * fresh epoll instance and has not switched the context's fd monitor yet:
     * QEMU's window between {@code fdmon_epoll_try_enable}'s walk and its
     * {@code ctx->fdmon_ops = &fdmon_epoll_ops}.
     */
    default void upgradeWindow() {
    }
}
