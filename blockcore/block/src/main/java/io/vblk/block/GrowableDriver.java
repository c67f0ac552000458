package io.vblk.block;

/**
 * Marks a protocol driver whose node may be read or written past its current
 * length (a host file grows on write, reads past EOF return zeroes), as
 * QEMU's file-posix allows for format drivers that append clusters.
 */
public interface GrowableDriver {
}
