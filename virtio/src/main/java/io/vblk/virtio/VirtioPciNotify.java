package io.vblk.virtio;

import io.vblk.aio.AioContext;
import io.vblk.aio.EventNotifier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The notification region of a virtio-pci function and where each queue's
 * kicks go: its host notifier (the ioeventfd, QEMU's
 * {@code virtio_pci_ioeventfd_assign} through
 * {@code virtio_bus_set_host_notifier}) or, in direct mode, the device's
 * home context ({@link VirtioDevice#kick}). Neither path runs device code on
 * the vCPU that wrote the doorbell.
 */
final class VirtioPciNotify {
    /** The transport's logger: these are its log lines. */
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciTransport.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    private final VirtioDevice device;
    private final String name;
    private final AioContext home;
    private final HostNotifierRoute[] routes;

    VirtioPciNotify(VirtioDevice device) {
        this.device = device;
        this.name = device.name();
        this.home = device.homeContext();
        this.routes = new HostNotifierRoute[device.numQueues()];
        for (int i = 0; i < routes.length; i++) {
            routes[i] = new HostNotifierRoute();
        }
    }

    /** A write at {@code off} of the notification region: kick the queue whose notify_off it addresses. */
    void write(int off) {
        int q = off / VirtioPciTransport.NOTIFY_OFF_MULTIPLIER;
        if (off % VirtioPciTransport.NOTIFY_OFF_MULTIPLIER != 0 || q >= routes.length) {
            LOG.debug("{}: notify write at offset {} names no queue", name, off);
            return;
        }
        if (TRACE) {
            LOG.trace("{} vq{}: kick", name, q);
        }
        if (!routes[q].kick()) {
            device.kick(q);
        }
    }

    /** Whether a write at {@code off} of the notification region goes to an ioeventfd. */
    boolean isDoorbell(long off) {
        int q = (int) (off / VirtioPciTransport.NOTIFY_OFF_MULTIPLIER);
        return q < routes.length && routes[q].notifier() != null;
    }

    /** See {@link VirtioPciTransport#setHostNotifierEnabled}. */
    void setHostNotifierEnabled(int q, boolean enabled) {
        if (!home.inHomeThread() && !home.lock().isHeldByCurrentThread()) {
            throw new IllegalStateException(name + ": host notifiers are switched in the home context " + home.name());
        }
        VirtQueue vq = device.queue(q);
        HostNotifierRoute route = routes[q];
        if (enabled) {
            if (route.notifier() != null) {
                return;
            }
            EventNotifier n = new EventNotifier(); // clear: the start's self-kick is the user's (bug 015)
            route.assign(n);
            vq.setHostNotifier(n);
            LOG.debug("{} vq{}: kicks go to ioeventfd {}", name, q, n);
        } else {
            if (vq.hostNotifierHandler != null) {
                throw new IllegalStateException(vq + ": detach the host notifier before disabling it");
            }
            EventNotifier n = route.deassign();
            if (n == null) {
                return;
            }
            vq.setHostNotifier(null);
            if (n.testAndClear()) {
                device.kick(q);
            }
            n.close();
            LOG.debug("{} vq{}: kicks dispatched directly", name, q);
        }
    }

    boolean isHostNotifierEnabled(int q) {
        return routes[q].notifier() != null;
    }

    /** Closes every ioeventfd; their handlers must be detached. */
    void close() {
        for (HostNotifierRoute r : routes) {
            EventNotifier n = r.deassign();
            if (n != null) {
                n.close();
            }
        }
    }

    /** The kick route of one queue; its lock keeps a vCPU from signalling an eventfd being closed. */
    private static final class HostNotifierRoute {
        private EventNotifier notifier;

        synchronized boolean kick() {
            if (notifier == null) {
                return false;
            }
            notifier.set();
            return true;
        }

        synchronized EventNotifier notifier() {
            return notifier;
        }

        synchronized void assign(EventNotifier n) {
            notifier = n;
        }

        synchronized EventNotifier deassign() {
            EventNotifier n = notifier;
            notifier = null;
            return n;
        }
    }
}
