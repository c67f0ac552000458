package io.vblk.guest;

/**
 * How a vCPU receives interrupts: it waits, and learns which MSI vector
 * (the message data the guest programmed) fired. The machine backs it with
 * the irqfds routed to that vCPU (KVM's irqfd → LAPIC path).
 */
public interface InterruptLine {
    /** Waits up to {@code timeoutNs} (negative: forever); returns the vector, or -1 on timeout. */
    int await(long timeoutNs);

    /** A vector already pending, or -1, without waiting. */
    int poll();
}
