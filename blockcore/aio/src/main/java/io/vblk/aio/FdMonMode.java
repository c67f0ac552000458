package io.vblk.aio;

/**
 * How an {@link AioContext} waits for its file descriptors: QEMU's
 * {@code ctx->fdmon_ops}. QEMU starts every context with {@code POLL}
 * (util/fdmon-poll.c, ppoll over a set rebuilt from the handler list) and
 * upgrades it to {@code EPOLL} (util/fdmon-epoll.c) once it watches
 * {@link FdMonOptions#EPOLL_ENABLE_THRESHOLD} fds or more; vblk's contexts
 * use epoll from the start unless told otherwise ({@link FdMonOptions}).
 */
public enum FdMonMode {
    /** epoll(7): a kernel interest set kept up to date by each registration. */
    EPOLL,
    /** ppoll(2) over the registered fds, upgraded to {@link #EPOLL} at the threshold. */
    POLL;

    /** "epoll" / "poll", as the system property spells it. */
    public String key() {
        return name().toLowerCase(java.util.Locale.ROOT);
    }
}
