package io.vblk.block.qcow2;

/**
 * The geometry of one open image: cluster size, L1/L2 shapes, refcount block
 * shape and the compressed-descriptor bit split. It mirrors the derived
 * fields QEMU keeps in {@code BDRVQcow2State} ({@code cluster_bits},
 * {@code l2_bits}, {@code refcount_block_bits}, {@code csize_shift}, ...)
 * and the index helpers of block/qcow2.h, so the request paths compute
 * indices with shifts and masks only.
 */
final class Layout {
    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    /** QEMU's limit on the L1 table (32 MiB); larger tables are refused as corrupt headers. */
    static final long MAX_L1_BYTES = 32L << 20;
    /** QEMU's limit on the refcount table (8 MiB). */
    static final long MAX_REFTABLE_BYTES = 8L << 20;

    final int clusterBits;
    final int clusterSize;
    final long clusterMask;
    /** log2 of the entries of one L2 table (8-byte entries: no extended L2). */
    final int l2Bits;
    final int l2Entries;
    /** Bits of a guest offset below the L1 index: one L2 table covers {@code 1 << l1Shift} bytes. */
    final int l1Shift;
    final long size;
    final int refcountOrder;
    final int refcountBits;
    /** log2 of the refcounts one refcount block holds. */
    final int refblockBits;
    final int refblockEntries;
    /** Compressed descriptor: host offset in bits 0..csizeShift-1, extra sectors above. */
    final int csizeShift;
    final long csizeMask;
    final long coffsetMask;

    Layout(int clusterBits, long size, int refcountOrder) {
        this.clusterBits = clusterBits;
        this.clusterSize = 1 << clusterBits;
        this.clusterMask = clusterSize - 1L;
        this.l2Bits = clusterBits - 3;
        this.l2Entries = 1 << l2Bits;
        this.l1Shift = clusterBits + l2Bits;
        this.size = size;
        this.refcountOrder = refcountOrder;
        this.refcountBits = 1 << refcountOrder;
        this.refblockBits = clusterBits + 3 - refcountOrder;
        this.refblockEntries = 1 << refblockBits;
        this.csizeShift = 62 - (clusterBits - 8);
        this.csizeMask = (1L << (clusterBits - 8)) - 1;
        this.coffsetMask = (1L << csizeShift) - 1;
    }

    /** Entries the L1 table needs to map {@code size} bytes (QEMU's {@code size_to_l1}). */
    static long requiredL1Entries(long size, int clusterBits) {
        int shift = clusterBits + clusterBits - 3;
        return (size + (1L << shift) - 1) >>> shift;
    }

    int l1Index(long guest) {
        return (int) (guest >>> l1Shift);
    }

    int l2Index(long guest) {
        return (int) ((guest >>> clusterBits) & (l2Entries - 1));
    }

    long clusterStart(long offset) {
        return offset & ~clusterMask;
    }

    /** End (exclusive) of the guest range mapped by the L2 table of {@code l1Index}. */
    long l2RangeEnd(int l1Index) {
        return (long) (l1Index + 1) << l1Shift;
    }

    long compressedOffset(long entry) {
        return entry & coffsetMask;
    }

    /** Bytes of compressed data from {@link #compressedOffset}: to the end of its last 512-byte sector. */
    int compressedBytes(long entry) {
        long sectors = ((entry >>> csizeShift) & csizeMask) + 1;
        return (int) (sectors * 512 - (compressedOffset(entry) & 511));
    }

    /** The 512-byte aligned host range a compressed cluster occupies, as QEMU refcounts it. */
    long compressedRangeStart(long entry) {
        return compressedOffset(entry) & ~511L;
    }

    long compressedRangeBytes(long entry) {
        return (((entry >>> csizeShift) & csizeMask) + 1) * 512;
    }

    long maxRefcount() {
        return refcountOrder == 6 ? Long.MAX_VALUE : (1L << refcountBits) - 1;
    }

    @Override
    public String toString() {
        return "cluster=" + clusterSize + " size=" + size + " refcount_bits=" + refcountBits;
    }
}
