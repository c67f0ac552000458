package io.vblk.block;

import java.nio.file.Path;

/**
 * An image format that can sit on a file node: probing by content and
 * opening (QEMU's format {@code BlockDriver}'s {@code bdrv_probe} and
 * {@code bdrv_open}). Found through {@link BlockDriverRegistry} (a format module
 * lists its implementation as a service), or added to one graph with
 * {@link BlockLayer#registerFormat}; an implementation found as a service has a
 * public no-argument constructor.
 */
public interface BlockFormat {
    /** The format's name as users spell it ("raw", "qcow2"). */
    String name();

    /** Confidence 0..100 that {@code head} (the first bytes of the image) is this format. */
    int probe(byte[] head);

    /**
     * Builds the driver of a new format node over {@code file}; may read
     * {@code file} synchronously (main loop). Errors are {@link BlockException}s.
     */
    BlockDriver open(BlockLayer layer, String nodeName, BlockNode file, boolean readOnly);

    /**
     * Creates a new image file of {@code size} bytes, optionally naming a
     * backing file (and its format): QEMU's {@code bdrv_create} through the
     * format's {@code .bdrv_co_create_opts}. The file must not exist. A format
     * that cannot create images refuses with a {@link BlockException}.
     */
    default void create(Path path, long size, String backingFile, String backingFormat) {
        throw new BlockException("cannot create " + path + ": not supported by format " + name());
    }

    /** Attaches any further children (a backing file) once the node exists. */
    default void afterOpen(BlockLayer layer, BlockNode node, boolean readOnly) {
    }
}
