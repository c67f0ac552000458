package io.vblk.job;

import java.util.BitSet;

/**
 * Which granules of a disk changed since they were last copied: QEMU's
 * {@code BdrvDirtyBitmap} as a mirror uses it. One bit per granule
 * (64 KiB by default); a write sets the bits of every granule it touches.
 * Used only in the job's context.
 */
public final class DirtyBitmap {
    private final BitSet bits = new BitSet();
    private final long length;
    private final int granularity;
    private final int shift;

    public DirtyBitmap(long length, int granularity) {
        if (granularity < 512 || Integer.bitCount(granularity) != 1) {
            throw new IllegalArgumentException("granularity must be a power of two >= 512, got " + granularity);
        }
        this.length = length;
        this.granularity = granularity;
        this.shift = Integer.numberOfTrailingZeros(granularity);
    }

    public int granularity() {
        return granularity;
    }

    public long length() {
        return length;
    }

    /** Marks every granule overlapping [offset, offset+bytes). */
    public void set(long offset, long bytes) {
        if (bytes <= 0 || offset >= length) {
            return;
        }
        long end = Math.min(length, offset + bytes);
        bits.set((int) (offset >>> shift), (int) ((end - 1) >>> shift) + 1);
    }

    /** Clears the granules fully or partly inside [offset, offset+bytes) (the caller copies all of them). */
    public void clear(long offset, long bytes) {
        if (bytes <= 0) {
            return;
        }
        long end = Math.min(length, offset + bytes);
        bits.clear((int) (offset >>> shift), (int) ((end - 1) >>> shift) + 1);
    }

    /**
     * Clears only the granules wholly inside [offset, offset+bytes) (a
     * granule cut by the disk's end counts as whole): for a copy that does not
     * cover whole granules, so that a write to the uncopied part of a granule
     * it touches stays marked.
     */
    public void clearWithin(long offset, long bytes) {
        if (bytes <= 0) {
            return;
        }
        long end = Math.min(length, offset + bytes);
        long first = (offset + granularity - 1) >>> shift;
        long last = end == length ? (end + granularity - 1) >>> shift : end >>> shift;
        if (last > first) {
            bits.clear((int) first, (int) last);
        }
    }

    /** Offset of the first dirty granule at or after {@code from} (wrapping around once), or -1. */
    public long nextDirty(long from) {
        int g = bits.nextSetBit((int) (Math.max(0, from) >>> shift));
        if (g < 0 && from > 0) {
            g = bits.nextSetBit(0);
        }
        return g < 0 ? -1 : (long) g << shift;
    }

    /** Bytes of consecutive dirty granules starting at {@code offset}, at most {@code max}, clipped to the length. */
    public long runLength(long offset, long max) {
        int g = (int) (offset >>> shift);
        int end = bits.nextClearBit(g);
        long bytes = ((long) end << shift) - offset;
        return Math.min(Math.min(bytes, max), length - offset);
    }

    public long dirtyBytes() {
        return (long) bits.cardinality() << shift;
    }

    public boolean isClean() {
        return bits.isEmpty();
    }
}
