package io.vblk.virtio;

import io.vblk.aio.EventNotifier;

/**
 * Where a {@link VirtioPciTransport}'s interrupts go: the machine's interrupt
 * controller, KVM's irqchip in QEMU. Two paths, as there:
 * <ul>
 * <li>userspace delivery, run in the device's home context:
 *     {@link #msi} (QEMU's {@code msix_notify} injecting the vector's message)
 *     and {@link #intx} (QEMU's {@code pci_set_irq});</li>
 * <li>irqfds: while the transport's guest notifiers are assigned, each used
 *     MSI-X vector's {@link EventNotifier} is announced with
 *     {@link #guestNotifierAssigned} (KVM_IRQFD assign) and any thread may
 *     signal it; {@link #guestNotifierReleased} withdraws it (deassign), after
 *     which a signal on it reaches the guest only if the sink says so.</li>
 * </ul>
 * Calls must not block or call back into the transport.
 */
public interface InterruptSink {
    /** Deliver MSI-X {@code vector}, whose table entry holds {@code address} and {@code data}. Home context. */
    void msi(int vector, long address, int data);

    /** The INTx line changed level (asserted by an interrupt, deasserted by reading the ISR). */
    void intx(boolean asserted);

    /** KVM_IRQFD assign: signalling {@code irqfd} should now interrupt the guest with (address, data). */
    void guestNotifierAssigned(int vector, EventNotifier irqfd, long address, int data);

    /** KVM_IRQFD deassign. */
    void guestNotifierReleased(int vector, EventNotifier irqfd);
}
