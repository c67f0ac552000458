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

    /** A completion was pushed to the used ring; its interrupt is scheduled (queue context). */
    default void completed(int queue, int status) {
    }
}
