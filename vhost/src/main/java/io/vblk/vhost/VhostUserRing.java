package io.vblk.vhost;

import io.vblk.aio.EventNotifier;
import io.vblk.virtio.VirtQueue;

/**
 * One ring as the front-end configured it: libvhost-user's {@code VuVirtq}
 * minus what the {@link VirtQueue} keeps — size, the three ring addresses
 * (front-end virtual addresses), base, the kick, call and error descriptors,
 * started (it has a kick descriptor; GET_VRING_BASE clears it) and enabled.
 * {@link VhostUserRings} decides from these whether the ring runs.
 *
 * <p>Threads: everything but the call and error descriptors is the home
 * thread's. The call descriptor is signalled from IOThreads while
 * SET_VRING_CALL may replace it on the fly, hence {@code callLock}.
 */
final class VhostUserRing {
    final int index;
    final int maxSize;
    int num;
    long descUaddr;
    long usedUaddr;
    long availUaddr;
    boolean addrSet;
    /** VHOST_VRING_F_LOG: writes to the used ring are logged at {@link #logGuestAddr} while logging is on. */
    boolean logUsed;
    long logGuestAddr;
    int base;
    EventNotifier kick;
    boolean started;
    boolean enabled;
    /** The host notifier of a queue whose ring does not run: an eventfd nobody signals. */
    EventNotifier idle;
    private final Object callLock = new Object();
    private EventNotifier call; // guarded by callLock
    private EventNotifier err;  // guarded by callLock

    VhostUserRing(int index, int maxSize) {
        this.index = index;
        this.maxSize = maxSize;
    }

    void signalCall() {
        synchronized (callLock) {
            if (call != null) {
                call.set();
            }
        }
    }

    void signalErr() {
        synchronized (callLock) {
            if (err != null) {
                err.set();
            }
        }
    }

    boolean hasCall() {
        synchronized (callLock) {
            return call != null;
        }
    }

    /** Replaces the call descriptor (closing the old one); the next signal uses the new one. */
    void setCall(EventNotifier n) {
        EventNotifier old;
        synchronized (callLock) {
            old = call;
            call = n;
        }
        if (old != null) {
            old.close();
        }
    }

    void setErr(EventNotifier n) {
        EventNotifier old;
        synchronized (callLock) {
            old = err;
            err = n;
        }
        if (old != null) {
            old.close();
        }
    }

    /** Replaces the kick descriptor, closing the old one; only while the ring is not served. */
    void setKick(EventNotifier n) {
        if (kick != null) {
            kick.close();
        }
        kick = n;
    }

    EventNotifier idle() {
        if (idle == null) {
            idle = new EventNotifier();
        }
        return idle;
    }

    /** Forgets everything the front-end set (the descriptors are closed). */
    void reset() {
        num = 0;
        descUaddr = 0;
        usedUaddr = 0;
        availUaddr = 0;
        addrSet = false;
        logUsed = false;
        logGuestAddr = 0;
        base = 0;
        started = false;
        enabled = false;
        setKick(null);
        setCall(null);
        setErr(null);
    }

    /** Also releases the idle notifier: the device is going away. */
    void close() {
        reset();
        if (idle != null) {
            idle.close();
            idle = null;
        }
    }

    String describe() {
        EventNotifier c;
        synchronized (callLock) {
            c = call;
        }
        return String.format("ring %d: num=%d base=%d %s%s kick=%s call=%s", index, num, base,
                started ? "started" : "stopped", enabled ? " enabled" : "", kick == null ? "-" : kick.fd(),
                c == null ? "-" : c.fd());
    }
}
