package io.vblk.guest;

import io.vblk.aio.EventNotifier;
import io.vblk.virtio.InterruptSink;

/** The transport's interrupts into the machine's {@link InterruptController} (KVM's irqchip routes). */
final class IrqchipSink implements InterruptSink {
    private final InterruptController irq;

    IrqchipSink(InterruptController irq) {
        this.irq = irq;
    }

    @Override
    public void msi(int vector, long address, int data) {
        irq.deliver(address, data);
    }

    @Override
    public void intx(boolean asserted) {
        // No guest here waits for INTx: SeaBIOS polls, the Linux-like driver uses MSI-X.
    }

    @Override
    public void guestNotifierAssigned(int vector, EventNotifier irqfd, long address, int data) {
        irq.assignIrqfd(irqfd, address, data);
    }

    @Override
    public void guestNotifierReleased(int vector, EventNotifier irqfd) {
        irq.releaseIrqfd(irqfd);
    }
}
