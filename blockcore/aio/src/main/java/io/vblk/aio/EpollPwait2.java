package io.vblk.aio;

import com.sun.jna.Native;
import com.sun.jna.Platform;
import com.sun.jna.Pointer;

/**
 * {@code epoll_pwait2(2)}: epoll with a nanosecond timeout, so timers are
 * not rounded up to whole milliseconds. Bound separately from {@link LibC}
 * because older C libraries lack it; {@link #AVAILABLE} says whether it
 * could be bound, and the event loop falls back to {@code epoll_wait}.
 */
final class EpollPwait2 {
    static final boolean AVAILABLE;

    static {
        boolean ok;
        try {
            Native.register(Platform.C_LIBRARY_NAME);
            ok = true;
        } catch (UnsatisfiedLinkError e) {
            ok = false;
        }
        AVAILABLE = ok;
    }

    private EpollPwait2() {
    }

    static native int epoll_pwait2(int epfd, Pointer events, int maxevents, Pointer timeout, Pointer sigmask);
}
