package io.vblk.virtio.blk;

/**
 * Hooks at virtio-blk's trace points (QEMU's {@code virtio_blk_handle_*} and
 * {@code virtio_blk_req_complete}): called in the context that reached the
 * point. Used for diagnostics and to stage a race at an exact step.
 */
public interface RequestObserver {
    RequestObserver NONE = new RequestObserver() {
    };

    /** A request was validated and is about to go to the backend (queue context). */
    default void submitted(int queue, int type, long sector) {
    }

    /** The backend entered a drained section: the device stops popping. */
    default void drainedBegin() {
    }

    /**
     * The device re-enabled guest kicks on a queue and found its ring empty:
     * the end of QEMU's {@code virtio_blk_handle_vq} (queue context). A kick
     * the driver decides on from here is the only way it tells of more.
     */
    default void kicksEnabled(int queue) {
    }

    /** A completion was pushed to the used ring; its interrupt is scheduled (queue context). */
    default void completed(int queue, int status) {
    }

    /**
     * The backend finished a request (backend context): its status is set;
     * {@code handedOff} says the push and notify happen later, in the queue's
     * own context (QEMU's trace point after {@code blk_co_preadv} returns in a
     * request coroutine, before {@code vu_queue_push}).
     */
    default void blockCompleted(int queue, boolean handedOff) {
    }

    /**
     * A queue's batched guest notification ran (QEMU's {@code notify_guest_bh}
     * reaching {@code virtio_notify_irqfd} or {@code virtio_notify}), in the
     * thread that ran it; {@code irqfd} names the path taken.
     */
    default void notified(int queue, boolean irqfd) {
    }
}
