package io.vblk.bench.aio;

import io.vblk.aio.EventNotifier;
import io.vblk.aio.LibC;
import io.vblk.aio.NativeException;

import com.sun.jna.Memory;

/**
 * A thread that sleeps in {@code epoll_wait} on one eventfd and answers
 * each wake-up by bumping a volatile counter: the IOThread of
 * {@link CrossThreadWakeBench} with the AioContext taken out. Per wake-up
 * it makes the same system calls the event loop makes: {@code epoll_wait}
 * (infinite timeout) returning the eventfd, then one {@code eventfd_read}
 * to clear it ({@link EventNotifier#testAndClear()}, as
 * {@code aio_notify_accept} does).
 *
 * <p>{@link #isAsleep()} plays the part of the context's SLEEPING phase: set
 * right before {@code epoll_wait}, cleared before the answer.
 */
final class EventfdEcho implements AutoCloseable {
    /** The echo thread's name, unique in the JVM. */
    static final String NAME = "bench-echo";
    private static final int MAX_EVENTS = 128; // as AioContext

    private final EventNotifier kick = new EventNotifier();
    private final int epfd;
    private final Memory events = new Memory((long) MAX_EVENTS * LibC.EPOLL_EVENT_SIZE);
    private final Thread thread;
    private volatile boolean running = true;
    private volatile boolean asleep;
    private volatile long echoed;   // written by the echo thread only
    private volatile Throwable failure;

    EventfdEcho() {
        epfd = LibC.check(LibC.epoll_create1(LibC.EPOLL_CLOEXEC), "epoll_create1");
        Memory ev = new Memory(LibC.EPOLL_EVENT_SIZE);
        ev.setInt(0, LibC.EPOLLIN);
        ev.setLong(4, 0L);
        LibC.check(LibC.epoll_ctl(epfd, LibC.EPOLL_CTL_ADD, kick.fd(), ev), "epoll_ctl(ADD)");
        thread = new Thread(this::loop, NAME);
        thread.setDaemon(true);
        thread.start();
    }

    private void loop() {
        try {
            while (running) {
                asleep = true;
                int n = LibC.epoll_wait(epfd, events, MAX_EVENTS, -1);
                asleep = false;
                if (n < 0) {
                    int err = LibC.errno();
                    if (err != LibC.EINTR) {
                        throw new NativeException("epoll_wait", err);
                    }
                } else if (n > 0 && kick.testAndClear()) {
                    echoed = echoed + 1;
                }
            }
        } catch (Throwable t) {
            failure = t;
        }
    }

    /** Wakes the echo thread: the write {@code aio_notify} makes. */
    void kick() {
        kick.set();
    }

    boolean isAsleep() {
        return asleep;
    }

    long echoed() {
        return echoed;
    }

    @Override
    public void close() {
        running = false;
        kick.set();
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (thread.isAlive()) {
            throw new IllegalStateException("echo thread did not stop");
        }
        kick.close();
        LibC.close(epfd);
        Throwable t = failure;
        if (t != null) {
            throw new IllegalStateException("echo thread failed", t);
        }
    }
}
