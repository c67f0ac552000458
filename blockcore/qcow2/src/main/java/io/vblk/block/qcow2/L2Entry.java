package io.vblk.block.qcow2;

/**
 * Decoding of L1 and L2 table entries: the {@code QCOW_OFLAG_*} flags and
 * {@code qcow2_get_cluster_type()} of block/qcow2.h. A cluster is one of
 * five kinds; the request paths switch on the kind, never on raw bits.
 */
final class L2Entry {
    /** Bit 63: the cluster (or L2 table) has refcount exactly 1 and may be written in place. */
    static final long COPIED = 1L << 63;
    /** Bit 62: the cluster is compressed. */
    static final long COMPRESSED = 1L << 62;
    /** Bit 0 (version 3): the cluster reads as zeroes. */
    static final long ZERO = 1L;
    /** Bits 9..55: host offset of a standard cluster or an L2 table. */
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;

    /** Unallocated: reads from the backing file (or zeroes without one). */
    static final int UNALLOCATED = 0;
    /** Zero flag without a host cluster. */
    static final int ZERO_PLAIN = 1;
    /** Zero flag with a preallocated host cluster (its contents are not used). */
    static final int ZERO_ALLOC = 2;
    /** A standard data cluster. */
    static final int NORMAL = 3;
    /** A compressed cluster (deflate). */
    static final int COMPRESSED_KIND = 4;

    private L2Entry() {
    }

    static int kind(long e) {
        if ((e & COMPRESSED) != 0) {
            return COMPRESSED_KIND;
        }
        if ((e & ZERO) != 0) {
            return (e & OFFSET_MASK) == 0 ? ZERO_PLAIN : ZERO_ALLOC;
        }
        return (e & OFFSET_MASK) == 0 ? UNALLOCATED : NORMAL;
    }

    static long hostOffset(long e) {
        return e & OFFSET_MASK;
    }

    /** Whether a guest write can go straight to the host cluster (QEMU's {@code cluster_needs_new_alloc} is false). */
    static boolean writableInPlace(long e) {
        return (e & (COPIED | COMPRESSED | ZERO)) == COPIED && (e & OFFSET_MASK) != 0;
    }

    static boolean readsAsZero(int kind) {
        return kind == ZERO_PLAIN || kind == ZERO_ALLOC;
    }

    static String describe(long e) {
        switch (kind(e)) {
            case UNALLOCATED: return "unallocated";
            case ZERO_PLAIN: return "zero";
            case ZERO_ALLOC: return "zero@0x" + Long.toHexString(hostOffset(e));
            case NORMAL: return "data@0x" + Long.toHexString(hostOffset(e)) + ((e & COPIED) != 0 ? "" : " (shared)");
            default: return "compressed 0x" + Long.toHexString(e);
        }
    }
}
