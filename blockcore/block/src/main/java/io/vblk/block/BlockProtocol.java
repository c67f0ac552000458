package io.vblk.block;

/**
 * A protocol driver reached by a filename prefix ({@code rbd:pool/image}),
 * as QEMU's protocol {@code BlockDriver}s with a {@code protocol_name} that
 * {@code bdrv_find_protocol} matches against "NAME:" at the start of a
 * filename. Found through {@link BlockDriverRegistry} (a protocol module lists
 * its implementation in {@code META-INF/services/io.vblk.block.BlockProtocol});
 * an implementation has a public no-argument constructor. The host file
 * protocol is built in and has no prefix: a filename that names no registered
 * protocol is a host path.
 */
public interface BlockProtocol {
    /** The prefix without its colon ("rbd"); a filename "rbd:..." is this protocol's. */
    String name();

    /**
     * Opens the driver of a new protocol node from {@code filename} (the
     * whole string, prefix included), as QEMU's {@code .bdrv_parse_filename}
     * followed by {@code .bdrv_open}. Main loop; may block while it connects.
     * Errors are {@link BlockException}s that name what could not be reached.
     */
    BlockDriver open(String filename, boolean readOnly);
}
