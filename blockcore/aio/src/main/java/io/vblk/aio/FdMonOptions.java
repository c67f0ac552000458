package io.vblk.aio;

/**
 * The fd monitor an {@link AioContext} starts with, and for poll mode the
 * number of watched fds at which its home thread upgrades it to epoll
 * (QEMU's {@code EPOLL_ENABLE_THRESHOLD}, 64; tests lower it to keep a
 * staged upgrade tiny).
 *
 * <p>Contexts made without explicit options (the main loop's, and
 * {@link MainLoop#newIOThread(String, long)}'s) take them from the system
 * properties {@value #MODE_PROPERTY} ({@code epoll}, the default, or
 * {@code poll}) and {@value #THRESHOLD_PROPERTY}, so a whole test suite can
 * run in poll mode: {@code mvn verify -Dvblk.aio.fdmon=poll}.
 */
public record FdMonOptions(FdMonMode mode, int upgradeThreshold) {
    /** QEMU's threshold: poll(2) costs O(fds) per wait, epoll does not. */
    public static final int EPOLL_ENABLE_THRESHOLD = 64;
    public static final String MODE_PROPERTY = "vblk.aio.fdmon";
    public static final String THRESHOLD_PROPERTY = "vblk.aio.fdmon.threshold";

    public FdMonOptions {
        if (mode == null) {
            throw new IllegalArgumentException("fd monitor mode must not be null");
        }
        if (upgradeThreshold < 1) {
            throw new IllegalArgumentException("epoll upgrade threshold must be >= 1, got " + upgradeThreshold);
        }
    }

    /** epoll from the start: vblk's default. */
    public static FdMonOptions epoll() {
        return new FdMonOptions(FdMonMode.EPOLL, EPOLL_ENABLE_THRESHOLD);
    }

    /** ppoll first, upgraded to epoll at QEMU's threshold: QEMU's default. */
    public static FdMonOptions poll() {
        return poll(EPOLL_ENABLE_THRESHOLD);
    }

    /** ppoll first, upgraded to epoll once {@code threshold} fds (the context's own eventfd included) are watched. */
    public static FdMonOptions poll(int threshold) {
        return new FdMonOptions(FdMonMode.POLL, threshold);
    }

    /** The options the system properties ask for; epoll when they are unset. */
    public static FdMonOptions fromSystemProperties() {
        String m = System.getProperty(MODE_PROPERTY, FdMonMode.EPOLL.key()).trim();
        FdMonMode mode;
        if (m.equalsIgnoreCase(FdMonMode.EPOLL.key())) {
            mode = FdMonMode.EPOLL;
        } else if (m.equalsIgnoreCase(FdMonMode.POLL.key())) {
            mode = FdMonMode.POLL;
        } else {
            throw new IllegalArgumentException("-D" + MODE_PROPERTY + "=" + m + ": expected epoll or poll");
        }
        String t = System.getProperty(THRESHOLD_PROPERTY);
        int threshold = EPOLL_ENABLE_THRESHOLD;
        if (t != null) {
            try {
                threshold = Integer.parseInt(t.trim());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("-D" + THRESHOLD_PROPERTY + "=" + t + ": expected a number of fds");
            }
        }
        return new FdMonOptions(mode, threshold);
    }

    @Override
    public String toString() {
        return mode == FdMonMode.EPOLL ? "epoll" : "poll (epoll from " + upgradeThreshold + " fds)";
    }
}
