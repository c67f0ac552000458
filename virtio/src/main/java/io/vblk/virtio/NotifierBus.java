package io.vblk.virtio;

/**
 * The part of a transport a dataplane drives: switching a queue's kicks to
 * its host notifier (an eventfd served by an IOThread) and assigning the
 * guest notifiers (the eventfds that interrupt the driver). QEMU's
 * {@code VirtioBusClass} hooks behind {@code virtio_bus_set_host_notifier}
 * ({@code ioeventfd_assign}) and {@code set_guest_notifiers}.
 *
 * <p>Two transports implement it: {@link VirtioPciTransport}, whose host
 * notifiers are ioeventfds on the notify BAR and whose guest notifiers are
 * MSI-X irqfds, and the vhost-user back-end ({@code io.vblk.vhost}), whose
 * host notifiers are the front-end's SET_VRING_KICK descriptors and whose
 * guest notifiers are its SET_VRING_CALL descriptors. The dataplane cannot
 * tell them apart. Both methods are called in the device's home context.
 */
public interface NotifierBus {
    /**
     * Gives queue {@code q} a host notifier ({@link VirtQueue#hostNotifier()}
     * non-null afterwards) or takes it away. Enabling must not lose a kick
     * that raced with the switch; disabling requires the handler serving the
     * notifier to be detached first ({@link VirtioDevice#detachHostNotifier}).
     */
    void setHostNotifierEnabled(int q, boolean enabled);

    /** Assigns (true) or releases (false) the guest notifiers of every queue. */
    void setGuestNotifiers(boolean assign);
}
