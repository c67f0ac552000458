package io.vblk.block;

/** Request flags: QEMU's {@code BdrvRequestFlags}, the subset vblk uses. */
public final class BlockFlags {
    /** Force unit access: the write is stable when it completes. */
    public static final int FUA = 1 << 0;
    /** A write-zeroes request may deallocate the range instead of writing zeroes. */
    public static final int MAY_UNMAP = 1 << 1;
    /** Fail a write-zeroes request with -ENOTSUP rather than writing a zero buffer. */
    public static final int NO_FALLBACK = 1 << 2;

    private BlockFlags() {
    }
}
