package io.vblk.block;

/**
 * Where the data of a range lives: QEMU's {@code bdrv_co_block_status}
 * result. {@code allocated} says this layer (rather than a backing file)
 * decides the contents of the first {@code bytes} bytes; {@code zero} says
 * they read as zeroes; {@code data} says they are stored.
 */
public record BlockStatus(boolean allocated, boolean zero, boolean data, long bytes) {
    public static BlockStatus data(long bytes) {
        return new BlockStatus(true, false, true, bytes);
    }

    public static BlockStatus zero(long bytes) {
        return new BlockStatus(true, true, false, bytes);
    }

    public static BlockStatus unallocated(long bytes) {
        return new BlockStatus(false, false, false, bytes);
    }
}
