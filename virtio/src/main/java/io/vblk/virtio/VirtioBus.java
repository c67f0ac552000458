package io.vblk.virtio;

/**
 * What a {@link VirtioDevice} needs from the transport it is plugged into:
 * QEMU's {@code VirtioBusClass} callbacks ({@code notify}, reset). The PCI
 * transport implements it; a vhost-user backend or a test can too.
 */
public interface VirtioBus {
    /** A bus that delivers nothing: a device not plugged in anywhere. */
    VirtioBus NONE = new VirtioBus() {
        @Override
        public void raiseQueueInterrupt(int queueIndex) {
        }

        @Override
        public void signalGuestNotifier(int queueIndex) {
        }

        @Override
        public void raiseConfigInterrupt() {
        }

        @Override
        public void deviceReset() {
        }
    };

    /**
     * A used-buffer notification for queue {@code queueIndex} through the
     * transport's normal path (QEMU's {@code virtio_irq}): delivered from the
     * device's home context. The device already checked the driver wants it.
     * Any thread; from elsewhere it is handed to the home context.
     */
    void raiseQueueInterrupt(int queueIndex);

    /**
     * A used-buffer notification through the queue's guest notifier, the irqfd
     * (QEMU's {@code virtio_notify_irqfd}): signalled from the calling thread
     * (an iothread) with no detour through the main loop. Reaches the guest
     * only while guest notifiers are assigned and wired by the machine; a signal
     * after they were torn down is lost, as in QEMU.
     */
    void signalGuestNotifier(int queueIndex);

    /** A configuration-change notification (QEMU's {@code virtio_notify_config}). Any thread. */
    void raiseConfigInterrupt();

    /**
     * The device is completing a driver- or system-initiated reset: forget the
     * transport's per-device state (selectors, vector mappings, interrupt
     * status). Called in the device's home context, after the device quiesced
     * and reset its queues, before its status reads back 0.
     */
    void deviceReset();
}
