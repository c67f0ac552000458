package io.vblk.block;

/**
 * What the device attached to a {@link BlockBackend} is told: QEMU's
 * {@code BlockDevOps}. During a drained section the device stops taking
 * requests from the guest (the dataplane detaches its queue handlers).
 * Called in the backend's home context (or by a holder of its lock).
 */
public interface BlockDevOps {
    BlockDevOps NONE = new BlockDevOps() {
    };

    /** Stop submitting requests (QEMU's {@code drained_begin}). */
    default void drainedBegin() {
    }

    /** Resume submitting (QEMU's {@code drained_end}). */
    default void drainedEnd() {
    }

    /** Whether the device still has activity a drain must wait for. */
    default boolean drainedPoll() {
        return false;
    }
}
