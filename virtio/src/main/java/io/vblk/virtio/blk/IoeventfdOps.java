package io.vblk.virtio.blk;

/**
 * How a virtio-blk device hands its queues to a dataplane: QEMU's
 * {@code start_ioeventfd}/{@code stop_ioeventfd} device callbacks and the
 * drained-section hooks of virtio-blk's dataplane. Called in the main loop.
 *
 * <p>It lives in virtio, not in the dataplane module, because the device is
 * the caller (DRIVER_OK, reset, drained sections) and virtio cannot depend on
 * the dataplane: it is the seam through which the dataplane module
 * ({@code io.vblk.dataplane.VirtioBlkDataplane}) and the vhost-user back-end
 * plug in. QEMU has the same split: the callbacks are on the device class,
 * hw/block/dataplane/virtio-blk.c implements them.
 */
public interface IoeventfdOps {
    /** The driver is ready (DRIVER_OK) or the machine resumes: serve the queues from the dataplane. */
    void startIoeventfd();

    /** Reset or pause: bring every queue back to the main loop, nothing in flight, every completion signalled. */
    void stopIoeventfd();

    /** A drained section begins: stop popping requests (detach queue handlers). */
    void drainedBegin();

    /**
     * The drained section ended: re-attach and process what arrived meanwhile.
     * Returns false when the dataplane is not serving the queues (stopped, or
     * stopping): the device then processes them itself, in its home context.
     */
    boolean drainedEnd();

    /**
     * Whether the dataplane serves the queues now (QEMU's
     * {@code ioeventfd_started && !ioeventfd_disabled}): false from the moment
     * a stop begins draining. Only bug 016's legacy notification choice reads it.
     */
    default boolean ioeventfdStarted() {
        return false;
    }
}
