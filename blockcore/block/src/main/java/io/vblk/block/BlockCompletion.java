package io.vblk.block;

/**
 * Completion of an asynchronous block request: QEMU's {@code BlockCompletionFunc}.
 * {@code ret} is 0 (or a non-negative count) on success and {@code -errno} on
 * failure. It runs in the home context of the node the request was issued
 * to. Implementations are usually pooled request objects, so issuing a
 * request allocates nothing.
 */
@FunctionalInterface
public interface BlockCompletion {
    void complete(int ret);
}
