package io.vblk.daemon;

import io.vblk.aio.AioContext;

/**
 * A running export of one block node: QEMU's {@code BlockExport}. It owns a
 * {@link io.vblk.block.BlockBackend} on the node and whatever serves it
 * (a vhost-user socket, an NBD server's export). Deleting it is QEMU's
 * {@code blk_exp_request_shutdown} followed by the last
 * {@code blk_exp_unref}: clients are disconnected, requests in flight
 * complete, the disk is flushed, and only then is the export gone.
 */
public interface BlockExport {
    String id();

    String type();

    String nodeName();

    /** Where its requests run. */
    AioContext context();

    /**
     * A client holds a reference to the export (QEMU's export refcount above
     * one, as an NBD connection does): a "safe" delete is then refused.
     */
    boolean hasClients();

    /**
     * Disconnects every client, waits for their requests, flushes and
     * detaches from the node, removes any socket file. Blocking; called off
     * the main loop. Idempotent.
     */
    void shutdown();

    /** For {@code query-block-exports} and dumps. */
    String describe();
}
