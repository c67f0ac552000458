package io.vblk.aio;

import com.sun.jna.Memory;

/**
 * An eventfd(2) used as a level-triggered wake-up flag: QEMU's
 * {@code EventNotifier}. Guest kicks (ioeventfd), guest interrupts (irqfd)
 * and each {@link AioContext}'s own wake-up all travel through one of these.
 * {@link #set()} may be called from any thread.
 */
public final class EventNotifier implements AutoCloseable {
    private final int fd;
    private final Memory scratch = new Memory(8);
    private volatile boolean closed;

    public EventNotifier() {
        fd = LibC.check(LibC.eventfd(0, LibC.EFD_NONBLOCK | LibC.EFD_CLOEXEC), "eventfd");
    }

    private EventNotifier(int fd) {
        this.fd = fd;
    }

    /**
     * Takes ownership of an eventfd made elsewhere (one a vhost-user front-end
     * passed with SCM_RIGHTS): QEMU's {@code event_notifier_init_fd}. Closing
     * the notifier closes the descriptor.
     */
    public static EventNotifier adopt(int fd) {
        if (fd < 0) {
            throw new IllegalArgumentException("not a file descriptor: " + fd);
        }
        return new EventNotifier(fd);
    }

    public int fd() {
        return fd;
    }

    /** Makes the notifier readable; a no-op if it already is (the counter saturates harmlessly). */
    public void set() {
        if (LibC.eventfd_write(fd, 1L) < 0) {
            int err = LibC.errno();
            if (err != LibC.EAGAIN) {
                throw new NativeException("eventfd_write(" + fd + ")", err);
            }
        }
    }

    /** Consumes the pending event, if any; returns whether one was pending. */
    public boolean testAndClear() {
        if (LibC.eventfd_read(fd, scratch) == 0) {
            return true;
        }
        int err = LibC.errno();
        if (err == LibC.EAGAIN) {
            return false;
        }
        throw new NativeException("eventfd_read(" + fd + ")", err);
    }

    public boolean isClosed() {
        return closed;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            LibC.close(fd);
        }
    }

    @Override
    public String toString() {
        return "EventNotifier(fd=" + fd + ")";
    }
}
