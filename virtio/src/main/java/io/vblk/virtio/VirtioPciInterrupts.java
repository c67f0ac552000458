package io.vblk.virtio;

import static io.vblk.virtio.VirtioPciRegs.NO_VECTOR;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

import io.vblk.aio.AioContext;
import io.vblk.aio.BottomHalf;
import io.vblk.aio.EventNotifier;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The interrupt side of a virtio-pci function: the ISR register, INTx, MSI-X
 * delivery and the guest notifiers (irqfds). QEMU's {@code virtio_pci_notify},
 * the ISR read of {@code virtio_pci_isr_read}, and
 * {@code virtio_pci_set_guest_notifiers} (hw/virtio/virtio-pci.c).
 *
 * <p>Every interrupt first sets its ISR bit (queue 0x1, configuration 0x2);
 * reading the ISR returns and clears it (deasserting INTx). A
 * {@link #raise}d interrupt is delivered from the device's home context (a BH
 * carries it there from another thread); a {@link #signalGuestNotifier} from
 * an iothread goes straight to the queue vector's irqfd. The function's
 * register state it shares (guest notifiers assigned, INTx disabled) is
 * guarded by the transport's monitor, passed in as {@code lock}.
 */
final class VirtioPciInterrupts {
    /** The transport's logger: these are its log lines. */
    private static final Logger LOG = LoggerFactory.getLogger(VirtioPciTransport.class);
    private static final boolean TRACE = LOG.isTraceEnabled();

    private final Object lock;
    private final String name;
    private final AioContext home;
    private final int numQueues;
    private final MsixTable msix;
    /** Per queue, then the config vector at numQueues; written by the common configuration. */
    private final AtomicIntegerArray vectors;
    private final EventNotifier intx;
    private final AtomicInteger isr = new AtomicInteger();
    private volatile boolean intxDisabled;
    private volatile boolean guestNotifiers;
    private final boolean[] assignedVectors;
    private final AtomicLong signalsWhileReleased = new AtomicLong();
    /** Interrupts raised off the home thread without guest notifiers: bit per queue, then config. */
    private final AtomicLongArray pendingIrq;
    private final BottomHalf irqBh;

    private final InterruptSink eventfdSink = new InterruptSink() {
        @Override
        public void msi(int vector, long address, int data) {
            msix.notifier(vector).set();
        }

        @Override
        public void intx(boolean asserted) {
            if (asserted) {
                intx.set();
            }
        }

        @Override
        public void guestNotifierAssigned(int vector, EventNotifier irqfd, long address, int data) {
        }

        @Override
        public void guestNotifierReleased(int vector, EventNotifier irqfd) {
        }
    };

    private volatile InterruptSink sink = eventfdSink;
    private final MsixTable.Delivery userspaceDelivery = (v, a, d) -> sink.msi(v, a, d);
    private final MsixTable.Delivery irqfdDelivery = this::signalIrqfd;

    VirtioPciInterrupts(Object lock, String name, AioContext home, int numQueues, MsixTable msix,
            AtomicIntegerArray vectors) {
        this.lock = lock;
        this.name = name;
        this.home = home;
        this.numQueues = numQueues;
        this.msix = msix;
        this.vectors = vectors;
        this.assignedVectors = new boolean[numQueues + 1];
        this.pendingIrq = new AtomicLongArray((numQueues + 1 + 63) / 64);
        this.intx = new EventNotifier();
        this.irqBh = home.bhNew(name + "-irq", this::deliverPendingInterrupts);
    }

    void setSink(InterruptSink s) {
        sink = s == null ? eventfdSink : s;
    }

    EventNotifier intxNotifier() {
        return intx;
    }

    int isrStatus() {
        return isr.get();
    }

    boolean guestNotifiersAssigned() {
        return guestNotifiers;
    }

    long signalsWhileReleased() {
        return signalsWhileReleased.get();
    }

    /** The guest's ISR read: returns and clears it, deasserting INTx. */
    int readIsr() {
        int v = isr.getAndSet(0);
        if (v != 0 && !msix.isEnabled()) {
            sink.intx(false);
        }
        if (TRACE) {
            LOG.trace("{}: ISR read 0x{}", name, Integer.toHexString(v));
        }
        return v;
    }

    /** The PCI status register's interrupt bit. */
    boolean intxAsserted() {
        return !msix.isEnabled() && isr.get() != 0;
    }

    /** The command register's INTx-disable bit was written (under the lock): a pending INTx follows it. */
    void setIntxDisabled(boolean disabled) {
        boolean wasDisabled = intxDisabled;
        intxDisabled = disabled;
        if (wasDisabled != disabled && !msix.isEnabled() && isr.get() != 0) {
            sink.intx(!disabled);
        }
    }

    private void signalIrqfd(int vector, long address, int data) {
        msix.notifier(vector).set();
    }

    /** How vectors unmasked by a guest write are delivered: through the irqfd while assigned. */
    MsixTable.Delivery unmaskDelivery() {
        return guestNotifiers ? irqfdDelivery : userspaceDelivery;
    }

    /** QEMU's {@code virtio_notify}/{@code virtio_notify_config}: ISR bit, then delivery from the home context. */
    void raise(int isrBit, int slot) {
        isr.getAndAccumulate(isrBit, (a, b) -> a | b);
        deliverFromHome(slot);
    }

    /**
     * QEMU's {@code virtio_notify_irqfd}: with MSI-X, the queue's vector is
     * signalled on its irqfd from this thread (pending instead while masked);
     * with INTx, the guest notifier is served by the home context, and a signal
     * while guest notifiers are released is lost, as in QEMU.
     */
    void signalGuestNotifier(int queueIndex) {
        isr.getAndAccumulate(VirtioPciRegs.ISR_QUEUE, (a, b) -> a | b);
        if (!guestNotifiers) {
            signalsWhileReleased.incrementAndGet();
            if (TRACE) {
                LOG.trace("{} vq{}: guest notifier signalled while released", name, queueIndex);
            }
        }
        if (msix.isEnabled()) {
            int v = vectors.get(queueIndex);
            if (v != NO_VECTOR) {
                msix.notify(v, irqfdDelivery);
            }
        } else if (guestNotifiers) {
            deliverFromHome(queueIndex);
        }
    }

    /** Slot {@code numQueues} is the configuration vector. Off the home thread, a BH carries it there. */
    private void deliverFromHome(int slot) {
        if (!home.inHomeThread()) {
            pendingIrq.getAndAccumulate(slot / 64, 1L << (slot % 64), (a, b) -> a | b);
            irqBh.schedule();
            return;
        }
        deliverNow(slot);
    }

    private void deliverNow(int slot) {
        if (msix.isEnabled()) {
            int v = vectors.get(slot);
            if (v != NO_VECTOR) {
                msix.notify(v, userspaceDelivery);
            } else if (TRACE) {
                LOG.trace("{}: interrupt for slot {} has no MSI-X vector", name, slot);
            }
        } else if (!intxDisabled && isr.get() != 0) {
            sink.intx(true);
        }
    }

    private void deliverPendingInterrupts() {
        for (int w = 0; w < pendingIrq.length(); w++) {
            long bits = pendingIrq.getAndSet(w, 0);
            while (bits != 0) {
                int b = Long.numberOfTrailingZeros(bits);
                bits &= bits - 1;
                deliverNow(w * 64 + b);
            }
        }
    }

    /** See {@link VirtioPciTransport#setGuestNotifiers}. */
    void setGuestNotifiers(boolean assign) {
        synchronized (lock) {
            if (assign == guestNotifiers) {
                return;
            }
            guestNotifiers = assign;
            if (assign) {
                if (msix.isEnabled()) {
                    for (int slot = 0; slot <= numQueues; slot++) {
                        int v = vectors.get(slot);
                        if (v != NO_VECTOR && !assignedVectors[v]) {
                            assignedVectors[v] = true;
                            sink.guestNotifierAssigned(v, msix.notifier(v), msix.address(v), msix.data(v));
                        }
                    }
                }
            } else {
                for (int v = 0; v < assignedVectors.length; v++) {
                    if (assignedVectors[v]) {
                        assignedVectors[v] = false;
                        sink.guestNotifierReleased(v, msix.notifier(v));
                    }
                }
            }
        }
        LOG.debug("{}: guest notifiers {}", name, assign ? "assigned" : "released");
    }

    /** The device reset: the ISR and interrupts not yet delivered are forgotten. */
    void deviceReset() {
        isr.set(0);
        for (int w = 0; w < pendingIrq.length(); w++) {
            pendingIrq.set(w, 0);
        }
    }

    /** The machine reset of the function (under the lock): INTx is enabled again. */
    void systemReset() {
        intxDisabled = false;
    }

    void closeBh() {
        irqBh.delete();
    }

    void closeIntx() {
        intx.close();
    }
}
